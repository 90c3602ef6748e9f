"""server.web_config_file: exporter-toolkit's format; every bad file named by its field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml

from rotator.errors import ConfigError
from rotator.web.config import read_web_config
from rotator.web.watch import WebConfigWatcher
from tests.web.certs import CA

HASH = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    ca = CA(tmp_path_factory.mktemp("pki"))
    server = ca.issue("server")
    other = ca.issue("other")
    return {
        "cert": str(server.cert),
        "key": str(server.key),
        "other_key": str(other.key),
        "ca": str(ca.cert),
    }


def problem(tmp_path: Path, content: Any) -> str:
    path = tmp_path / "web.yml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    with pytest.raises(ConfigError) as caught:
        WebConfigWatcher(path)
    (line,) = caught.value.problems
    assert line.startswith(f"server.web_config_file ({path}): ")
    return line.split("): ", 1)[1]


def test_a_full_file_in_exporter_toolkit_format_is_taken(
    tmp_path: Path, pki: dict[str, str]
) -> None:
    path = tmp_path / "web.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {
                    "cert_file": pki["cert"],
                    "key_file": pki["key"],
                    "client_ca_file": pki["ca"],
                    "client_auth_type": "RequireAndVerifyClientCert",
                    "min_version": "TLS12",
                    "max_version": "TLS13",
                    "cipher_suites": [
                        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                        "TLS_AES_128_GCM_SHA256",
                    ],
                    "prefer_server_cipher_suites": False,
                },
                "http_server_config": {"http2": True, "headers": {"X-Frame-Options": "deny"}},
                "basic_auth_users": {"prometheus": HASH},
            }
        )
    )
    web = WebConfigWatcher(path)
    assert web.scheme == "https"
    assert web.state.headers == [(b"x-frame-options", b"deny")]
    assert web.state.users is not None and web.state.users.check("prometheus", "pw")


def test_relative_paths_are_relative_to_the_file(tmp_path: Path, pki: dict[str, str]) -> None:
    here = tmp_path / "etc"
    here.mkdir()
    for name in ("cert", "key"):
        (here / f"tls.{name}").write_bytes(Path(pki[name]).read_bytes())
    path = here / "web.yml"
    path.write_text(
        yaml.safe_dump({"tls_server_config": {"cert_file": "tls.cert", "key_file": "tls.key"}})
    )
    tls = read_web_config(path).tls_server_config
    assert tls is not None and tls.cert_file == here / "tls.cert"
    assert WebConfigWatcher(path).scheme == "https"


def test_no_file_means_plain_http() -> None:
    web = WebConfigWatcher(None)
    assert web.scheme == "http" and web.ssl_context is None and web.state.users is None
    assert web.poll() is False


@pytest.mark.parametrize(
    ("tls", "expected"),
    [
        (
            {"cipher_suites": ["TLS_RSA_WITH_RC4_128_SHA"]},
            "cipher_suites: [0] 'TLS_RSA_WITH_RC4_128_SHA' is not a cipher suite",
        ),
        (
            {"client_auth_type": "RequireAnyClientCert"},
            "client_auth_type: RequireAnyClientCert (a client certificate taken without verifying",
        ),
        (
            {"client_auth_type": "Sometimes"},
            "tls_server_config.client_auth_type: must be one of NoClientCert",
        ),
        ({"client_auth_type": "RequireAndVerifyClientCert"}, "needs client_ca_file"),
        ({"curve_preferences": ["X25519"]}, "tls_server_config.curve_preferences: not supported"),
        (
            {"min_version": "TLS13", "max_version": "TLS12"},
            "min_version TLS13 is above max_version",
        ),
        ({"min_version": "SSL3"}, "tls_server_config.min_version: Input should be 'TLS10'"),
        (
            {"cert": "-----BEGIN CERTIFICATE-----"},
            "tls_server_config.cert: inline PEM is not supported",
        ),
        ({"cert_fil": "x"}, "tls_server_config.cert_fil: unknown setting"),
    ],
)
def test_a_bad_tls_setting_is_named(
    tmp_path: Path, pki: dict[str, str], tls: dict[str, Any], expected: str
) -> None:
    section = {"cert_file": pki["cert"], "key_file": pki["key"], **tls}
    assert expected.replace("Value error, ", "") in problem(
        tmp_path, {"tls_server_config": section}
    )


def test_unusable_files_are_named(tmp_path: Path, pki: dict[str, str]) -> None:
    missing = problem(
        tmp_path, {"tls_server_config": {"cert_file": pki["cert"], "key_file": "/nonexistent.key"}}
    )
    assert missing == "tls_server_config.key_file: cannot read (No such file or directory)"
    mismatch = problem(
        tmp_path, {"tls_server_config": {"cert_file": pki["cert"], "key_file": pki["other_key"]}}
    )
    assert mismatch.startswith("tls_server_config.cert_file/key_file: cannot use them")
    not_a_ca = problem(
        tmp_path,
        {
            "tls_server_config": {
                "cert_file": pki["cert"],
                "key_file": pki["key"],
                "client_ca_file": pki["key"],
                "client_auth_type": "RequireAndVerifyClientCert",
            }
        },
    )
    assert not_a_ca.startswith("tls_server_config.client_ca_file: ")


def test_other_bad_sections_are_named(tmp_path: Path) -> None:
    secret_looking = "$2y$10$notreallyahash"
    said = problem(tmp_path, {"basic_auth_users": {"alice": secret_looking}})
    assert said.startswith(
        "basic_auth_users: Value error, alice: not a bcrypt hash".replace("Value error, ", "")
    )
    assert secret_looking not in said
    assert "header 'X-Powered-By' is not supported" in problem(
        tmp_path, {"http_server_config": {"headers": {"X-Powered-By": "me"}}}
    )
    assert "X-Frame-Options must be deny or sameorigin" in problem(
        tmp_path, {"http_server_config": {"headers": {"X-Frame-Options": "allow"}}}
    )
    assert problem(tmp_path, {"rate_limit": {"interval": "1s"}}).startswith(
        "rate_limit: not supported"
    )
    assert problem(tmp_path, "tls_server_config: [").startswith("not valid YAML")
    assert problem(tmp_path, "- a list") == "(top level): must be a mapping"
    (tmp_path / "web.yml").unlink()
    with pytest.raises(ConfigError, match=r"cannot read \(No such file or directory\)"):
        WebConfigWatcher(tmp_path / "web.yml")


def test_config_validate_reads_the_web_config_file_as_run_does(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from rotator.cli.commands import cli

    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump({"basic_auth_users": {"prometheus": "plain-text"}}))
    config = tmp_path / "rotator.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "server": {"web_config_file": str(web)},
                "keys": [{"name": "alpha", "vault_path": "mistral/alpha"}],
            }
        )
    )
    result = CliRunner().invoke(cli, ["config", "validate", "--config", str(config)])
    assert result.exit_code == 2
    assert f"server.web_config_file ({web}): basic_auth_users: prometheus: not a bcrypt" in (
        result.output
    )
    web.write_text(yaml.safe_dump({"basic_auth_users": {"prometheus": HASH}}))
    result = CliRunner().invoke(cli, ["config", "validate", "--config", str(config)])
    assert result.exit_code == 0, result.output
