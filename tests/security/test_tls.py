"""TLS is verified by default for everything that carries a key or a token over HTTP.

A real HTTPS server on loopback with a self-signed certificate (made with the ``openssl``
CLI) is refused by the Mistral verifier, the http sink and the http reload, and accepted
once ``ca_cert`` names that certificate. A refused handshake means no request was sent, so
the key never left.

Referenced, not repeated: plain ``http://`` only to loopback or with ``allow_insecure``
(``tests/unit/test_config.py``, ``tests/integration/test_sinks.py``,
``tests/security/test_plain_http.py``); redirects never followed with the key
(``test_redirect_is_not_followed`` in ``tests/integration/test_verifier.py``,
``test_http_redirect_is_refused_and_never_followed`` in ``tests/integration/test_sinks.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rotator.adapters.mistral.verifier import MistralVerifier
from rotator.adapters.sinks.file import FileSink
from rotator.adapters.sinks.http import HttpSink
from rotator.adapters.sinks.registry import close_sinks
from rotator.config.mistral import MistralSettings
from rotator.config.sinks import FileSinkSettings, HttpSinkSettings
from rotator.domain.model import Status
from rotator.errors import SinkError
from tests.security.tls_server import Cert, HttpsServer, make_cert
from tests.sink_helpers import V1, error_texts

KEY = V1.api_key
REFUSED = "CERTIFICATE_VERIFY_FAILED"


def cert_in(directory: Path, names: str = "IP:127.0.0.1,DNS:localhost") -> Cert:
    try:
        return make_cert(directory, names=names)
    except FileNotFoundError:
        pytest.skip("the openssl CLI is not installed: no self-signed certificate to test with")


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    return cert_in(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def https(cert: Cert) -> Iterator[HttpsServer]:
    with HttpsServer(cert) as server:
        yield server


async def verify_at(url: str, ca_cert: Path | None = None) -> tuple[Status, str]:
    settings = MistralSettings(base_url=url, retries=0, timeout_seconds=5, ca_cert=ca_cert)
    async with MistralVerifier(settings) as verifier:
        verdict = await verifier.verify(KEY)
    return verdict.status, verdict.detail


# --- Mistral -------------------------------------------------------------------------------


async def test_verifier_refuses_a_self_signed_server_by_default(https: HttpsServer) -> None:
    status, detail = await verify_at(https.url)
    assert status is Status.UNREACHABLE  # never "invalid": the key was not even asked about
    assert REFUSED in detail
    assert KEY not in detail
    assert https.requests == []


async def test_verifier_trusts_the_server_given_as_ca_cert(https: HttpsServer, cert: Cert) -> None:
    assert await verify_at(https.url, cert.cert) == (
        Status.VALID,
        "HTTP 200: mistral-large-latest available",
    )
    (request,) = https.requests
    assert request.headers["authorization"] == f"Bearer {KEY}"


async def test_a_trusted_certificate_for_another_name_is_refused(tmp_path: Path) -> None:
    elsewhere = cert_in(tmp_path, names="DNS:mistral.elsewhere.test")
    with HttpsServer(elsewhere) as server:
        status, detail = await verify_at(server.url, elsewhere.cert)
        assert server.requests == []
    assert status is Status.UNREACHABLE
    assert "mismatch" in detail  # the host name is checked, not only the signature


# --- the http sink and the http reload -----------------------------------------------------


async def test_http_sink_refuses_a_self_signed_server_by_default(https: HttpsServer) -> None:
    sink = HttpSink(HttpSinkSettings(type="http", url=f"{https.url}/api/key"))
    try:
        with pytest.raises(SinkError, match=REFUSED) as caught:
            await sink.deliver(V1)
    finally:
        await close_sinks([sink])
    assert KEY not in error_texts(caught.value)
    assert https.requests == []


async def test_http_sink_trusts_the_server_given_as_ca_cert(https: HttpsServer, cert: Cert) -> None:
    spec = HttpSinkSettings(type="http", url=f"{https.url}/api/key", ca_cert=cert.cert)
    sink = HttpSink(spec)
    try:
        await sink.deliver(V1)
    finally:
        await close_sinks([sink])
    (request,) = https.requests
    assert (request.method, request.path) == ("PUT", "/api/key")
    assert KEY in request.body.decode()


@pytest.mark.parametrize("trusted", [False, True])
async def test_http_reload_verifies_tls_like_the_sink(
    https: HttpsServer, cert: Cert, tmp_path: Path, trusted: bool
) -> None:
    reload = {"url": f"{https.url}/reload", "method": "POST"}
    if trusted:
        reload["ca_cert"] = str(cert.cert)
    sink = FileSink(
        FileSinkSettings.model_validate(
            {"type": "file", "path": tmp_path / "api-key", "reload": reload}
        )
    )
    try:
        if trusted:
            await sink.deliver(V1)
            assert [r.path for r in https.requests] == ["/reload"]
        else:
            with pytest.raises(SinkError, match=REFUSED):
                await sink.deliver(V1)
            assert https.requests == []
    finally:
        await close_sinks([sink])
