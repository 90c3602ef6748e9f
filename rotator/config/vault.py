"""``vault:``: where Vault is and how the daemon logs in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from rotator.config.common import CaCert, Section, from_env


class TokenAuth(Section):
    method: Literal["token"] = "token"
    token_file: Path | None = None
    """File holding the token; without it ``$VAULT_TOKEN`` is used."""


class AppRoleAuth(Section):
    method: Literal["approle"]
    role_id_file: Path
    secret_id_file: Path
    mount_path: str = "approle"


class KubernetesAuth(Section):
    method: Literal["kubernetes"]
    role: str
    jwt_file: Path = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
    mount_path: str = "kubernetes"


VaultAuth = Annotated[TokenAuth | AppRoleAuth | KubernetesAuth, Field(discriminator="method")]


class VaultSettings(Section):
    address: str = Field(default_factory=from_env("VAULT_ADDR", "http://127.0.0.1:8200"))
    namespace: str | None = Field(default_factory=from_env("VAULT_NAMESPACE"))
    ca_cert: CaCert = Field(default_factory=from_env("VAULT_CACERT"))
    auth: VaultAuth = Field(default_factory=TokenAuth)
    kv_mount: str = "secret"
    state_path: str = "mistral-rotator/state"
    timeout_seconds: float = Field(default=10, gt=0)

    @field_validator("address")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")

    @field_validator("kv_mount", "state_path")
    @classmethod
    def _strip_slashes(cls, v: str) -> str:
        v = v.strip("/")
        if not v:
            raise ValueError("must not be empty")
        return v
