"""``server:``: the metrics and admin listeners, their web config file and the admin token."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from rotator.config.common import Listen, Section


class ServerSettings(Section):
    metrics_listen: Listen = "0.0.0.0:9102"
    admin_listen: Listen = "127.0.0.1:8080"
    admin_token_file: Path | None = None
    """Without it, ``$ROTATOR_ADMIN_TOKEN``."""
    admin_insecure_loopback: bool = False
    metrics_per_key: Literal["full", "compact"] = "full"
    """``compact`` (for thousands of keys): status as one ``mistral_key_status_code`` series;
    load deploy/prometheus/alerts-compact.yml instead of alerts.yml."""
    web_config_file: Path | None = None
    """TLS, client certificates and basic auth for every listener (exporter-toolkit's
    web config format; :mod:`rotator.web.config`). Without it: plain HTTP."""
