"""Configuration: defaults, durations, environment, and every error listed with its path."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from rotator.config import load_settings, parse_settings
from rotator.config.common import parse_duration
from rotator.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = {"keys": [{"name": "a", "vault_path": "mistral/a"}]}


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("15m", 900), ("1h", 3600), ("7d", 604800), (45, 45)]
)
def test_durations(text: object, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["30", "1w", "soon", "", True])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(bad)


def test_contract_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", "https://vault.example:8200/")
    monkeypatch.setenv("VAULT_NAMESPACE", "team")
    s = parse_settings(MINIMAL)
    assert s.vault.address == "https://vault.example:8200"
    assert s.vault.namespace == "team"
    assert s.vault.kv_mount == "secret" and s.vault.state_path == "mistral-rotator/state"
    assert s.mistral.base_url == "https://api.mistral.ai"
    assert s.mistral.model == "mistral-large-latest"
    assert s.schedule.poll_interval == timedelta(seconds=3)
    assert s.schedule.verify_interval == timedelta(hours=1)
    assert (s.expiry.max_lifetime_days, s.expiry.warn_days, s.expiry.critical_days) == (365, 30, 7)
    assert s.server.metrics_listen == "0.0.0.0:9102"
    assert s.server.admin_listen == "127.0.0.1:8080"


def test_example_config_is_valid_and_complete() -> None:
    s = load_settings(ROOT / "config" / "rotator.example.yaml")
    assert [k.name for k in s.keys] == ["jtel-live-agent"]
    assert [sink.type for sink in s.keys[0].sinks] == ["file", "http", "vault"]


def test_three_mistakes_are_all_listed_with_paths() -> None:
    data = {
        "schedule": {"poll_interval": "often"},
        "mistral": {"timeout_seconds": -1},
        "keys": [{"name": "Bad Name", "vault_path": "mistral/x", "sinks": [{"type": "ftp"}]}],
    }
    with pytest.raises(ConfigError) as err:
        parse_settings(data)
    problems = err.value.problems
    assert any(p.startswith("schedule.poll_interval:") for p in problems)
    assert any(p.startswith("mistral.timeout_seconds:") for p in problems)
    assert any(p.startswith("keys[0].name:") for p in problems)
    assert any(p.startswith("keys[0].sinks[0]") for p in problems)


def test_unknown_setting_and_duplicate_names() -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings({"vault": {"adress": "x"}, **MINIMAL})
    assert err.value.problems == ["vault.adress: unknown setting"]
    with pytest.raises(ConfigError, match="more than once"):
        parse_settings({"keys": [MINIMAL["keys"][0], MINIMAL["keys"][0]]})


@pytest.mark.parametrize(
    ("server", "intake", "words"),
    [
        ({"admin_listen": "127.0.0.1:9102"}, None, "server.metrics_listen and server.admin_listen"),
        (
            {"admin_listen": "127.0.0.1:8080"},
            "127.0.0.1:8080",
            "server.admin_listen and intake.listen",
        ),
        ({}, "127.0.0.1:9102", "server.metrics_listen and intake.listen"),
        (
            {"metrics_listen": "[::]:9000"},
            "127.0.0.1:9000",
            "server.metrics_listen and intake.listen",
        ),
    ],
)
def test_two_listeners_on_one_port_are_refused_at_validation(
    server: dict[str, str], intake: str | None, words: str
) -> None:
    config: dict[str, object] = {**MINIMAL, "server": server}
    if intake:
        config["intake"] = {"listen": intake}
    with pytest.raises(ConfigError) as err:
        parse_settings(config)
    assert any(words in problem for problem in err.value.problems), err.value.problems


def test_listeners_on_other_hosts_or_free_ports_may_share_a_number() -> None:
    parse_settings(
        {
            **MINIMAL,
            "server": {"metrics_listen": "127.0.0.1:0"},
            "intake": {"listen": "127.0.0.1:0"},
        }
    )
    parse_settings(
        {
            **MINIMAL,
            "server": {"admin_listen": "127.0.0.2:9102", "metrics_listen": "127.0.0.1:9102"},
        }
    )


def test_sink_errors_name_the_sink_field() -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(
            {
                "keys": [
                    {
                        "name": "a",
                        "vault_path": "p",
                        "sinks": [{"type": "file", "path": "/x", "mode": "999"}],
                    }
                ]
            }
        )
    assert err.value.problems[0].startswith("keys[0].sinks[0].mode:")


def test_plain_http_to_mistral_only_on_loopback() -> None:
    parse_settings({**MINIMAL, "mistral": {"base_url": "http://127.0.0.1:9999"}})
    with pytest.raises(ConfigError, match="loopback"):
        parse_settings({**MINIMAL, "mistral": {"base_url": "http://mistral.example"}})


def test_cli_validate_exits_2_and_lists_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "schedule: {poll_interval: often}\n"
        "expiry: {warn_days: 3, critical_days: 10}\n"
        "keys: [{name: UPPER, vault_path: mistral/x}]\n"
    )
    for command in (["config", "validate"], ["run"]):
        proc = subprocess.run(
            [sys.executable, "-m", "rotator", *command, "--config", str(bad)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2, proc.stderr
        assert "schedule.poll_interval:" in proc.stderr
        assert "expiry:" in proc.stderr and "critical_days" in proc.stderr
        assert "keys[0].name:" in proc.stderr


def test_cli_validate_ok(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rotator",
            "config",
            "validate",
            "--config",
            str(ROOT / "config" / "rotator.example.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "configuration OK" in proc.stdout
