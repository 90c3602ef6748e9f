"""``rotator run`` and the signals a hurried operator sends: Ctrl-C pressed twice, a second
SIGTERM from a supervisor. A clean stop is exit 0 however many signals follow the first."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from rotator.demo.standin import MistralStandIn
from tests.fixtures.daemon import KeyKit, configured_daemon
from tests.fixtures.openbao import OpenBaoServer
from tests.intake_helpers import iso_date, new_value


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
