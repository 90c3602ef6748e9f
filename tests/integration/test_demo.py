"""``rotator demo``, then Mistral's own SDK pointed at the demo's stand-in, as its hint says."""

from __future__ import annotations

import ast
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from rotator.demo.sdk_hint import DEMO_KEY_PATH, SNIPPET_END
from rotator.demo.standin import DEFAULT_MODELS
from tests.waiting import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Demo:
    """``rotator demo`` in a subprocess; its output, read as it comes."""

    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "MISTRAL_API_KEY"}
        ports = ["--metrics-port", str(free_port()), "--admin-port", str(free_port())]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rotator", "demo", *ports],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._reader.join(5)
            if self.proc.stdout is not None:
                self.proc.stdout.close()


@pytest.fixture
def demo() -> Iterator[Demo]:
    running = Demo()
    try:
        yield running
    finally:
        running.stop()


def snippet(output: str) -> str | None:
    """The shell heredoc the demo prints for the SDK: its Python source, or None yet."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.endswith(f"<<'{SNIPPET_END}'")), None)
    if start is None or SNIPPET_END not in lines[start + 1 :]:
        return None
    end = lines.index(SNIPPET_END, start + 1)
    return "\n".join(lines[start + 1 : end]) + "\n"


def demo_key(output: str) -> str:
    """The demo key the snippet uses, read from OpenBao as the snippet does."""
    vault = next(line.split()[3] for line in output.splitlines() if line.startswith("OpenBao"))
    token_file = output.split("root token in ", 1)[1].split(")", 1)[0]
    ask = urllib.request.Request(
        f"{vault}/v1/{DEMO_KEY_PATH}", headers={"X-Vault-Token": Path(token_file).read_text()}
    )
    with urllib.request.urlopen(ask, timeout=5) as answer:
        return str(json.load(answer)["data"]["data"]["api_key"])


@pytest.mark.slow
def test_the_sdk_lists_the_demo_standins_models_as_the_hint_says(demo: Demo) -> None:
    source = wait_for(lambda: snippet(demo.output), timeout=60, what="the demo's SDK hint")
    assert "python" in demo.output.split(f"<<'{SNIPPET_END}'")[0].splitlines()[-1]
    listed = subprocess.run(
        [sys.executable, "-"], input=source, capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    assert set(DEFAULT_MODELS) <= set(ast.literal_eval(listed.stdout))
    key = demo_key(demo.output)
    for text in (demo.output, listed.stdout, listed.stderr, source):
        assert key not in text


@pytest.mark.slow
def test_the_demo_prints_an_intake_link_that_opens(demo: Demo) -> None:
    def link() -> str | None:
        return next((x.strip() for x in demo.lines if "/intake/demo-expiring." in x), None)

    url = wait_for(link, 60, "the demo's intake link")
    with urllib.request.urlopen(url, timeout=10) as answer:
        page = answer.read().decode()
    assert answer.status == 200 and "demo-expiring (demo)" in page and 'name="api_key"' in page
