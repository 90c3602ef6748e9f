"""``rotator``: the daemon, the one-shot check, staging a key, config validation, the demo."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import click

from rotator import __version__, logs
from rotator.config import Settings, load_settings
from rotator.errors import ConfigError, RotatorError

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2

config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="YAML file (default $ROTATOR_CONFIG or /etc/rotator/rotator.yaml).",
)


def _load(config_file: Path | None) -> Settings:
    try:
        return load_settings(config_file)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_USAGE)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rotator")
def cli() -> None:
    """Keep the Mistral API keys of an integration alive, from Vault."""


@cli.command()
@config_option
@click.option(
    "--log-format",
    type=click.Choice(["json", "console"]),
    default=None,
    help="Default: json when stdout is not a terminal.",
)
@click.option("--log-level", default="INFO", show_default=True)
def run(
    config_file: Path | None, log_format: Literal["json", "console"] | None, log_level: str
) -> None:
    """Run the daemon until SIGTERM or SIGINT."""
    settings = _load(config_file)
    logs.configure(log_format, log_level.upper())
    from rotator.daemon import run as run_daemon

    asyncio.run(run_daemon(settings))


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.argument("names", nargs=-1)
def check(config_file: Path | None, as_json: bool, names: tuple[str, ...]) -> None:
    """One pass: read Vault, verify every key (or NAMES), print a table. Delivers nothing."""
    settings = _load(config_file)
    logs.configure("json" if as_json else None, "WARNING")
    unknown = set(names) - {k.name for k in settings.keys}
    if unknown:
        click.echo(f"unknown key(s): {', '.join(sorted(unknown))}", err=True)
        sys.exit(EXIT_USAGE)
    rows = asyncio.run(_check(settings, list(names)))
    _print_rows(rows, settings, as_json)
    from rotator.table import healthy

    sys.exit(EXIT_OK if healthy(rows, settings.expiry.critical_days) else EXIT_PROBLEM)


async def _check(settings: Settings, names: list[str]) -> list[dict[str, Any]]:
    from rotator.daemon import build_app

    app = build_app(settings, with_sinks=False)
    try:
        chosen = names or app.service.names()
        views = await asyncio.gather(*(app.service.inspect(n) for n in chosen))
    finally:
        await app.aclose()
    now = datetime.now(UTC)
    return [v.as_dict(now) for v in views]


def _print_rows(rows: list[dict[str, Any]], settings: Settings, as_json: bool) -> None:
    from rotator.table import render

    if as_json:
        click.echo(json.dumps({"keys": rows}, indent=2))
    else:
        click.echo(
            render(
                rows,
                critical_days=settings.expiry.critical_days,
                warn_days=settings.expiry.warn_days,
                colour=sys.stdout.isatty(),
            )
        )


@cli.command()
@config_option
@click.option(
    "--expires-at",
    default=None,
    help="ISO date or date-time the key expires (as chosen in Mistral's console).",
)
@click.option("--key-name", default=None, help="The key's name in Mistral's console.")
@click.argument("name")
def stage(
    config_file: Path | None, expires_at: str | None, key_name: str | None, name: str
) -> None:
    """Read a new key from stdin or a hidden prompt, verify it, store it as a new version."""
    settings = _load(config_file)
    logs.configure(None, "WARNING")
    key = next((k for k in settings.keys if k.name == name), None)
    if key is None:
        click.echo(f"unknown key: {name}", err=True)
        sys.exit(EXIT_USAGE)
    if sys.stdin.isatty():
        api_key = getpass.getpass(f"New Mistral key for {name} (hidden): ")
    else:
        api_key = sys.stdin.readline()
    from rotator.staging import stage_key

    try:
        message = asyncio.run(
            stage_key(
                settings, key.vault_path, api_key.strip(), expires_at=expires_at, key_name=key_name
            )
        )
    except RotatorError as exc:
        click.echo(f"not staged: {exc}", err=True)
        sys.exit(EXIT_PROBLEM)
    click.echo(message)


@cli.group()
def config() -> None:
    """Configuration helpers."""


@config.command("validate")
@config_option
def validate(config_file: Path | None) -> None:
    """Check the configuration and list every error with its field path."""
    settings = _load(config_file)
    click.echo(
        f"configuration OK: {len(settings.keys)} key(s)"
        + (f", discovery under {settings.discover.prefix}" if settings.discover else "")
    )


@cli.command()
@click.option("--metrics-port", default=9102, show_default=True)
@click.option("--admin-port", default=8080, show_default=True)
def demo(metrics_port: int, admin_port: int) -> None:
    """A local OpenBao dev server, seeded keys, and the daemon against them (Ctrl-C stops)."""
    from rotator.demo.run import run_demo

    sys.exit(run_demo(metrics_port=metrics_port, admin_port=admin_port))


def main() -> None:
    cli()
