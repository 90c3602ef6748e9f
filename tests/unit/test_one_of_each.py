"""The one secret-file reader and the one client TLS builder: what each caller relies on."""

from __future__ import annotations

from pathlib import Path

import pytest

from rotator.adapters.tls import TlsFileError, client_context, client_tls
from rotator.errors import ConfigError
from rotator.secretfile import SecretFileError, read_secret_file


def test_a_secret_file_is_read_stripped(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("  s3cret-token\n", encoding="utf-8")
    seen: list[int] = []
    assert read_secret_file(path, check_mode=lambda _, mode: seen.append(mode)) == "s3cret-token"
    assert seen == [path.stat().st_mode]


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "No such file or directory"), (b" \n", None), (b"\xff\xfe", "not UTF-8 text")],
    ids=["missing", "empty", "not-utf8"],
)
def test_an_unusable_secret_file_says_why(
    tmp_path: Path, content: bytes | None, reason: str | None
) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SecretFileError) as caught:
        read_secret_file(path)
    assert caught.value.path == path
    assert caught.value.reason == reason


def test_without_a_ca_file_httpx_uses_its_own_bundle() -> None:
    assert client_tls(None, where="mistral") is True


def test_an_unusable_ca_file_names_the_setting_and_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "none.pem"
    with pytest.raises(ConfigError, match=r"mistral: ca_cert .*none\.pem is unusable \(No such"):
        client_tls(missing, where="mistral")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n", encoding="utf-8")
    with pytest.raises(TlsFileError) as caught:
        client_context(garbage)
    assert caught.value.path == garbage and not caught.value.client_cert
    assert caught.value.reason == "NO_CERTIFICATE_OR_CRL_FOUND"  # OpenSSL's words, not a repr


def test_an_unusable_client_certificate_is_told_apart_from_the_ca(tmp_path: Path) -> None:
    missing = tmp_path / "client.pem"
    with pytest.raises(TlsFileError) as caught:
        client_context(None, missing)
    assert caught.value.client_cert and caught.value.path == missing
