"""``rotator stage``: a key typed by ops is verified before it reaches Vault."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import hvac
import pytest
import yaml

from rotator.demo.standin import MistralStandIn
from tests.fixtures.openbao import OpenBaoServer, write_private

GOOD = "skstagegood0123456789abcdefghij"
BAD = "skstagebad0123456789abcdefghijk"


def _stage(config: Path, name: str, key: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rotator", "stage", name, "--config", str(config), *extra],
        input=key + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )


def _setup(tmp_path: Path, openbao: OpenBaoServer, mistral: MistralStandIn, kv_prefix: str) -> Path:
    token = write_private(tmp_path / "token", openbao.root_token)
    config: dict[str, Any] = {
        "vault": {"address": openbao.url, "auth": {"method": "token", "token_file": str(token)}},
        "mistral": {"base_url": mistral.url, "retries": 0},
        "keys": [{"name": "portal", "vault_path": f"{kv_prefix}/portal"}],
    }
    path = tmp_path / "rotator.yaml"
    path.write_text(yaml.safe_dump(config))
    mistral.set_key(GOOD, "valid")
    mistral.set_key(BAD, "invalid")
    return path


def test_stage_writes_a_verified_key_with_its_expiry(
    openbao: OpenBaoServer, mistral: MistralStandIn, kv_prefix: str, tmp_path: Path
) -> None:
    config = _setup(tmp_path, openbao, mistral, kv_prefix)
    expires = (datetime.now(UTC) + timedelta(days=300)).date().isoformat()
    proc = _stage(config, "portal", GOOD, "--expires-at", expires, "--key-name", "jtel Live")
    assert proc.returncode == 0, proc.stderr
    assert "version 1" in proc.stdout and GOOD[-4:] in proc.stdout
    assert GOOD not in proc.stdout + proc.stderr
    data = openbao.client().secrets.kv.v2.read_secret_version(
        path=f"{kv_prefix}/portal", raise_on_deleted_version=True
    )["data"]["data"]
    assert data["api_key"] == GOOD and data["key_name"] == "jtel Live"
    assert data["expires_at"].startswith(expires)
    # A second stage is a second version, never an overwrite of the first.
    assert _stage(config, "portal", GOOD).returncode == 0
    meta = openbao.client().secrets.kv.v2.read_secret_metadata(path=f"{kv_prefix}/portal")
    assert meta["data"]["current_version"] == 2


def test_stage_refuses_bad_key_and_bad_expiry_and_writes_nothing(
    openbao: OpenBaoServer, mistral: MistralStandIn, kv_prefix: str, tmp_path: Path
) -> None:
    config = _setup(tmp_path, openbao, mistral, kv_prefix)
    proc = _stage(config, "portal", BAD)
    assert proc.returncode == 1 and "401" in proc.stderr and "nothing was written" in proc.stderr
    assert BAD not in proc.stdout + proc.stderr
    past = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    proc = _stage(config, "portal", GOOD, "--expires-at", past)
    assert proc.returncode == 1 and "in the past" in proc.stderr
    far = (datetime.now(UTC) + timedelta(days=400)).date().isoformat()
    proc = _stage(config, "portal", GOOD, "--expires-at", far)
    assert proc.returncode == 1 and "max_lifetime_days" in proc.stderr
    proc = _stage(config, "portal", "has space inside0123456789")
    assert proc.returncode == 1 and "whitespace" in proc.stderr
    with pytest.raises(hvac.exceptions.InvalidPath):
        openbao.client().secrets.kv.v2.read_secret_metadata(path=f"{kv_prefix}/portal")
