"""Mistral's Admin API alerts for real: stand-in → daemon → Prometheus (shipped rules, every
``for:`` set to 0s as in test_alerts_e2e) → Alertmanager → webhook.

An organization key nobody put in Vault, expiring in 5 days, fires
MistralUnmanagedKeyExpiringSoon with its name and workspace; the managed key, matched by its
``hidden_key``, does not.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from rotator.demo.standin import MistralStandIn
from tests.e2e.test_alerts_e2e import _rules_without_for
from tests.fixtures.daemon import assert_no_key_in
from tests.fixtures.openbao import OpenBaoServer
from tests.fixtures.prometheus import Alert, AlertWebhook, PrometheusFactory
from tests.integration.mint_rig import TODAY, mint_rig

pytestmark = pytest.mark.e2e


def test_an_unmanaged_key_expiring_in_five_days_fires(
    openbao: OpenBaoServer,
    mistral: MistralStandIn,
    kv_prefix: str,
    tmp_path: Path,
    prometheus_factory: PrometheusFactory,
    alert_webhook: AlertWebhook,
) -> None:
    rig = mint_rig(openbao, mistral, kv_prefix, tmp_path, days_left=6)
    del rig.daemon.config["keys"][0]["mint"]  # watched only: nothing is minted here
    laptop = mistral.admin.add_key(
        name="laptop of someone", expiration_date=TODAY + timedelta(days=5)
    )
    daemon = rig.daemon.start()
    try:
        target = daemon.metrics_url.removeprefix("http://")
        prometheus_factory.start(
            rule_files=[_rules_without_for(tmp_path / "alerts.yml")], targets=[target]
        )

        def unmanaged(alert: Alert) -> bool:
            labels = alert["labels"]
            return bool(
                labels.get("alertname") == "MistralUnmanagedKeyExpiringSoon"
                and alert["status"] == "firing"
            )

        fired = alert_webhook.wait_for(unmanaged, 60)
        assert fired["labels"]["key_id"] == laptop.key_id
        assert fired["labels"]["name"] == "laptop of someone"
        assert fired["labels"]["workspace"] == "Default Workspace"
        assert fired["labels"]["managed"] == "false"
        assert (
            "expires in 4" in fired["annotations"]["summary"]
            or "expires in 5" in (fired["annotations"]["summary"])
        )
        # The managed key expires in 6 days too, but it is not reported as unmanaged.
        named = {a["labels"].get("name") for a in alert_webhook.alerts() if unmanaged(a)}
        assert named == {"laptop of someone"}
    finally:
        daemon.stop()
    assert_no_key_in(
        [daemon.output(), *map(str, alert_webhook.notifications())], rig.secrets_seen()
    )
