"""A daemon with Mistral's Admin API against the stand-in and OpenBao, for the minting tests.

One key, ``agent``, stored by a person with ``days_left`` left and known to the stand-in's
organization (so that retiring can match it); ``mint`` set with short waits.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rotator.demo.standin import MistralStandIn
from rotator.demo.standin_admin import OrgKeyRecord
from tests.fixtures.daemon import DaemonProcess, KeyKit, configured_daemon
from tests.fixtures.openbao import OpenBaoServer, write_private

NAME = "agent"
TODAY = datetime.now(UTC).date()


@dataclass
class MintRig:
    openbao: OpenBaoServer
    standin: MistralStandIn
    kit: KeyKit
    daemon: DaemonProcess
    old_value: str
    old_record: OrgKeyRecord

    def vault(self, version: int | None = None) -> dict[str, Any]:
        answer = self.openbao.client().secrets.kv.v2.read_secret_version(
            path=self.kit.path(NAME), version=version, raise_on_deleted_version=True
        )
        data: dict[str, Any] = answer["data"]["data"]
        data["_version"] = answer["data"]["metadata"]["version"]
        return data

    def state(self) -> dict[str, Any]:
        path = f"{self.daemon.config['vault']['state_path']}/{NAME}"
        try:
            answer = self.openbao.client().secrets.kv.v2.read_secret_version(
                path=path, raise_on_deleted_version=True
            )
        except Exception:
            return {}
        data: dict[str, Any] = answer["data"]["data"]
        return data

    def sink(self) -> str:
        path = Path(self.daemon.config["keys"][0]["sinks"][0]["path"])
        return path.read_text().strip() if path.exists() else ""

    def minted(self) -> list[OrgKeyRecord]:
        """Live keys the daemon minted."""
        return [r for r in self.standin.admin.org_keys() if r.minted]

    def secrets_seen(self) -> list[str]:
        """Every key value in play: seeded, minted (read back from Vault), the admin key."""
        values = [*self.kit.values, self.standin.admin.admin_key]
        version = self.vault()["_version"]
        for v in range(1, version + 1):
            try:
                values.append(self.vault(v)["api_key"])
            except Exception:  # a deleted version holds nothing to scan for
                continue
        return values


def mint_rig(
    openbao: OpenBaoServer,
    standin: MistralStandIn,
    kv_prefix: str,
    workdir: Path,
    *,
    days_left: int = 10,
    mint: dict[str, Any] | None = None,
    admin: dict[str, Any] | None = None,
) -> MintRig:
    kit = KeyKit(openbao, standin, f"{kv_prefix}-{secrets.token_hex(3)}")
    expires = TODAY + timedelta(days=days_left)
    _, value = kit.put(NAME, expires_at=expires.isoformat())
    record = standin.admin.add_key(name="agent (console)", api_key=value, expiration_date=expires)
    standin.admin.policy_days = 90
    standin.admin.warmup_s = 0.5
    standin.admin.header = "x-api-key"
    key_file = write_private(workdir / "mistral-admin-key", standin.admin.admin_key + "\n")
    daemon = configured_daemon(
        workdir,
        openbao,
        standin,
        kit,
        [NAME],
        schedule={"poll_interval": "1s"},
        rotation={"lease": "4s"},
        mistral={
            "admin": {
                "base_url": f"{standin.url}/v1/admin",
                "key_file": str(key_file),
                "auth_header": "x-api-key",
                "inventory_interval": "1h",
                "timeout_seconds": 2,
                "retries": 1,
                "max_requests_per_second": 50,
                **(admin or {}),
            }
        },
    )
    daemon.config["keys"][0]["mint"] = {
        "workspace_uuid": standin.admin.workspaces[0]["uuid"],
        "name": "{name} {date}",
        "lifetime_days": 365,
        "before_expiry": "30d",
        "revoke_previous_after": "3s",
        "verify_warmup": "15s",
        **(mint or {}),
    }
    return MintRig(openbao, standin, kit, daemon, value, record)
