"""Schemathesis against a running daemon's ``/openapi.json`` with a valid token.

Every documented operation gets generated valid and invalid requests (examples, coverage,
fuzzing and stateful phases, a bounded number of each): no 5xx, every status code and body as
the document says. The run is seeded, so a failure reproduces; ``SCHEMATHESIS_SEED`` varies it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from rotator.demo.standin import MistralStandIn
from tests.fixtures.daemon import KeyKit, assert_no_key_in, start_daemon
from tests.fixtures.openbao import OpenBaoServer

MAX_EXAMPLES = "10"


def schemathesis_binary() -> str:
    beside = Path(sys.executable).parent / "schemathesis"
    found = str(beside) if beside.exists() else shutil.which("schemathesis")
    if found is None:
        pytest.fail("schemathesis is not installed: pip install -e '.[dev]'")
    return found


def test_the_api_matches_its_openapi_document(openbao: OpenBaoServer, tmp_path: Path) -> None:
    with MistralStandIn() as standin:
        kit = KeyKit(openbao, standin, f"mistral/schemathesis-{uuid.uuid4().hex[:8]}")
        names = ["alpha", "beta"]
        for name in names:
            kit.put(name, expires_at="2099-01-01")
            kit.put(name)  # a second version, so rollback and version= have something to do
        workdir = tmp_path / "daemon"
        workdir.mkdir()
        daemon = start_daemon(workdir, openbao, standin, kit, names)
        try:
            run = subprocess.run(
                [
                    schemathesis_binary(),
                    "run",
                    f"{daemon.admin_url}/openapi.json",
                    "--header",
                    f"Authorization: Bearer {daemon.token}",
                    "--checks",
                    "all",
                    "--max-examples",
                    MAX_EXAMPLES,
                    "--seed",
                    os.environ.get("SCHEMATHESIS_SEED", "20240601"),
                    "--workers",
                    "1",
                    "--request-timeout",
                    "45",
                ],
                capture_output=True,
                text=True,
                cwd=tmp_path,
                timeout=240,
                check=False,
            )
            assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
            assert daemon.ready(), "the daemon is no longer ready after the run"
        finally:
            code = daemon.stop()
    assert code == 0
    output = daemon.output()
    assert "Traceback" not in output
    # The admin package's loggers: rotator.admin.routes, rotator.admin.operations, ...
    assert not re.search(r'"logger": "rotator\.admin[.\w]*", "level": "error"', output)
    assert_no_key_in([output, run.stdout], kit.values)
