"""``mistral:``: the API the keys are verified against."""

from __future__ import annotations

from pydantic import Field, model_validator

from rotator.config.admin import AdminApiSettings
from rotator.config.common import CaCert, Section, check_plain_http


class MistralSettings(Section):
    base_url: str = "https://api.mistral.ai"
    model: str = "mistral-large-latest"
    timeout_seconds: float = Field(default=10, gt=0)
    retries: int = Field(default=3, ge=0, le=10)
    """Extra attempts after a transient answer (429, 5xx, timeout) within one verification."""
    max_concurrency: int = Field(default=8, ge=1, le=256)
    max_requests_per_second: float = Field(default=5, gt=0)
    ca_cert: CaCert = None
    allow_insecure: bool = False
    """Permit plain http:// to a host other than loopback."""
    admin: AdminApiSettings | None = None
    """Mistral's Admin API (Enterprise): inventory, minting. Absent: not used."""

    @model_validator(mode="after")
    def _tls_unless_loopback(self) -> MistralSettings:
        check_plain_http(self.base_url, self.allow_insecure)
        return self
