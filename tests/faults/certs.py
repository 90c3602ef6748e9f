"""Self-signed loopback certificates from the ``openssl`` command line, for TLS faults."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

OPENSSL = shutil.which("openssl")


def self_signed(workdir: Path, name: str, days: int = 2) -> tuple[Path, Path]:
    """A certificate for ``127.0.0.1`` signed by its own key: (cert.pem, key.pem), valid from
    now for ``days`` (longer for a daemon whose clock is moved ahead with libfaketime).

    Skips the calling test when the ``openssl`` command is not installed.
    """
    if OPENSSL is None:
        pytest.skip("the openssl command is not installed: cannot make a test certificate")
    cert, key = workdir / f"{name}.crt", workdir / f"{name}.key"
    subprocess.run(
        [
            OPENSSL,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            str(days),
            "-subj",
            f"/CN={name}",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
