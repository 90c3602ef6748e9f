"""``rotator run`` and the signals a hurried operator sends: Ctrl-C pressed twice, a second
SIGTERM from a supervisor. A clean stop is exit 0 however many signals follow the first."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rotator.demo.standin import MistralStandIn
from tests.faults.proxy import FaultProxy
from tests.fixtures.daemon import KeyKit, configured_daemon
from tests.fixtures.openbao import OpenBaoServer
from tests.intake_helpers import iso_date, new_value
from tests.waiting import wait_for


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_signals_after_the_first_keep_a_clean_stop_at_exit_0(
    openbao: OpenBaoServer, mistral: MistralStandIn, tmp_path: Path, sig: signal.Signals
) -> None:
    kit = KeyKit(openbao, mistral, f"mistral/signals-{new_value()[:8]}")
    kit.put("k1", expires_at=iso_date(200))
    daemon = configured_daemon(tmp_path, openbao, mistral, kit, ["k1"])
    daemon.start()
    process = daemon._process
    assert process is not None
    try:
        process.send_signal(sig)
        daemon.wait_until(lambda: daemon.events("rotator.stopping"), 20, "rotator.stopping")
        # Again and again until it is gone: through the end of the stop and the exit.
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            process.send_signal(sig)
            time.sleep(0.002)
        code = process.wait(5)
    finally:
        daemon.stop()
    output = daemon.output()
    assert code == 0, f"exit {code}:\n{daemon.tail()}"
    assert "Traceback" not in output
    assert daemon.events("rotator.stopped")


def test_sigterm_while_start_up_waits_on_a_hanging_vault_exits_0_quietly(
    openbao: OpenBaoServer, mistral: MistralStandIn, tmp_path: Path
) -> None:
    """Vault takes connections and answers nothing; the stop comes while start-up still
    waits for the tenants' list (before the admin API listens): exit 0, and no "Error
    running job" traceback for the first poll, cancelled before it ran."""
    kit = KeyKit(openbao, mistral, f"mistral/hang-{new_value()[:8]}")
    kit.put("k1", expires_at=iso_date(200))
    with FaultProxy(("127.0.0.1", openbao.port)) as vault:
        daemon = configured_daemon(
            tmp_path, openbao, mistral, kit, ["k1"], vault={"address": vault.url}
        )
        daemon.config["vault"]["timeout_seconds"] = 2
        daemon.config["discover"] = {"prefix": kit.prefix + "/", "sinks": []}
        daemon.config_path.write_text(yaml.safe_dump(daemon.config))
        vault.hang()
        command = ["run", "--config", str(daemon.config_path), "--log-format", "json"]
        with daemon.log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "rotator", *command],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=daemon.base_env(),
                cwd=tmp_path,
            )
        try:
            wait_for(lambda: daemon.events("rotator.starting"), 30, "rotator.starting")
            assert not daemon.events("admin.listening"), "start-up should wait on Vault"
            process.send_signal(signal.SIGTERM)
            code = process.wait(30)
        finally:
            if process.poll() is None:
                process.kill()
            vault.passthrough()
    assert code == 0, daemon.tail()
    assert "Traceback" not in daemon.output(), daemon.tail()
    assert daemon.events("rotator.stopped")
