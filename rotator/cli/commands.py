"""``rotator``: the daemon, the one-shot check, staging a key, config validation, the demo,
and the admin-API clients (status, rotate, verify, rollback)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import click

from rotator import __version__
from rotator.domain.terms import KEY_NAME, Outcome
from rotator.errors import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, ConfigError, RotatorError

# Only what parsing the command line needs is imported above: every command imports the rest
# (the client, the configuration, the daemon) itself, so that ``--help`` and the client
# commands start without them.

if TYPE_CHECKING:
    from rotator.cli.client import AdminClient
    from rotator.config import Settings

T = TypeVar("T")
Command = TypeVar("Command", bound=Callable[..., Any])

FILE = click.Path(dir_okay=False, path_type=Path)
"""One instance for every file option: click looks up a translation of the type's name each
time one is made (dozens of file-system probes), and the type holds no state."""

config_option = click.option(
    "--config",
    "config_file",
    type=FILE,
    default=None,
    help="YAML file (default $ROTATOR_CONFIG or /etc/rotator/rotator.yaml).",
)


def _load(config_file: Path | None) -> Settings:
    # Here, not at the top: pydantic and YAML cost more than ``--help`` or ``status`` takes.
    from rotator.config import load_settings

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
    import asyncio
    import signal

    stop = asyncio.Event()

    def outside_the_daemon(signum: int, frame: object) -> None:
        # Before the daemon's own handlers are set, or after they are gone: during start-up
        # nothing has begun, so exit 0 at once; at the end of a clean stop a second signal
        # (Ctrl-C pressed twice) lets the stop finish instead of killing the process.
        if not stop.is_set():
            raise SystemExit(EXIT_OK)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, outside_the_daemon)
    settings = _load(config_file)
    from rotator import logs

    logs.configure(log_format, log_level.upper())
    from rotator.app.daemon import run as run_daemon

    try:
        asyncio.run(run_daemon(settings, stop=stop))
    except ConfigError as exc:  # the admin API cannot start: no token, port taken
        click.echo(str(exc), err=True)
        sys.exit(EXIT_USAGE)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.argument("names", nargs=-1)
def check(config_file: Path | None, as_json: bool, names: tuple[str, ...]) -> None:
    """One pass: read Vault, verify every key (or NAMES), print a table. Delivers nothing."""
    settings = _load(config_file)
    from rotator import logs

    logs.configure("json" if as_json else None, "WARNING", sys.stderr)
    unknown = set(names) - {k.name for k in settings.keys}
    if unknown and settings.discover is None:
        click.echo(f"unknown key(s): {', '.join(sorted(unknown))}", err=True)
        sys.exit(EXIT_USAGE)
    import asyncio

    try:
        rows = asyncio.run(_check(settings, list(names)))
    except UnknownKeys as exc:  # not configured, and not discovered under the prefix either
        click.echo(str(exc), err=True)
        sys.exit(EXIT_USAGE)
    _print_rows(rows, settings, as_json)
    from rotator.cli.table import healthy

    sys.exit(EXIT_OK if healthy(rows, settings.expiry.critical_days) else EXIT_PROBLEM)


class UnknownKeys(RotatorError):
    """Names given to ``check`` that are neither configured nor discovered."""


async def _check(settings: Settings, names: list[str]) -> list[dict[str, Any]]:
    import asyncio
    from datetime import UTC, datetime

    from rotator.app.bootstrap import build_app, build_discovery

    app = build_app(settings, with_sinks=False)
    try:
        discovery = build_discovery(app)
        if discovery is not None:
            await discovery.refresh()
        unknown = set(names) - set(app.service.names())
        if unknown:
            raise UnknownKeys(f"unknown key(s): {', '.join(sorted(unknown))}")
        chosen = names or app.service.names()
        views = await asyncio.gather(*(app.service.inspect(n) for n in chosen))
    finally:
        await app.aclose()
    now = datetime.now(UTC)
    return [v.as_dict(now) for v in views]


def _print_rows(rows: list[dict[str, Any]], settings: Settings, as_json: bool) -> None:
    from rotator.cli.table import render

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
    from rotator import logs

    logs.configure(None, "WARNING", sys.stderr)
    vault_path = _vault_path(settings, name)
    if vault_path is None:
        click.echo(f"unknown key: {name}", err=True)
        sys.exit(EXIT_USAGE)
    if sys.stdin.isatty():
        import getpass

        api_key = getpass.getpass(f"New Mistral key for {name} (hidden): ")
    else:
        api_key = sys.stdin.readline()
    import asyncio

    from rotator.app.bootstrap import stage as stage_key

    try:
        message = asyncio.run(
            stage_key(
                settings, vault_path, api_key.strip(), expires_at=expires_at, key_name=key_name
            )
        )
    except RotatorError as exc:
        click.echo(f"not staged: {exc}", err=True)
        sys.exit(EXIT_PROBLEM)
    click.echo(message)


def _vault_path(settings: Settings, name: str) -> str | None:
    """A configured key's path, or where discovery finds a tenant of that name."""
    key = next((k for k in settings.keys if k.name == name), None)
    if key is not None:
        return key.vault_path
    if settings.discover is not None and KEY_NAME.match(name):
        return settings.discover.prefix + name
    return None


@cli.group()
def config() -> None:
    """Configuration helpers."""


@config.command("validate")
@config_option
def validate(config_file: Path | None) -> None:
    """Check the configuration and list every error with its field path."""
    settings = _load(config_file)
    from rotator.app.bootstrap import open_web_config

    try:
        open_web_config(settings)  # as `run` reads it: a bad web config file is exit 2 too
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_USAGE)
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


# --- clients of the running daemon's admin API ----------------------------------------------


def _remember_tls(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    """The TLS options reach the client through the context: no command's signature grows."""
    ctx.meta.setdefault("rotator.tls", {})[param.name] = value


def admin_options(command: Command) -> Command:
    for option, env, what in reversed(TLS_OPTIONS):
        command = click.option(
            option,
            envvar=env,
            type=FILE,
            default=None,
            expose_value=False,
            callback=_remember_tls,
            help=f"{what} (default ${env}).",
        )(command)
    command = click.option(
        "--token-file",
        type=FILE,
        default=None,
        help="File holding the admin token (default: $ROTATOR_ADMIN_TOKEN).",
    )(command)
    command = click.option(
        "--url",
        envvar="ROTATOR_URL",
        default=None,
        help="The daemon's admin API (default $ROTATOR_URL, else server.admin_listen of "
        "--config, else http://127.0.0.1:8080).",
    )(command)
    command = click.option(
        "--config",
        "config_file",
        type=FILE,
        default=None,
        help="The daemon's YAML file: its admin address and admin_token_file, unless "
        "--url or --token-file say otherwise.",
    )(command)
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(command)


TLS_OPTIONS = [
    ("--ca-cert", "ROTATOR_CA_CERT", "CA file to verify an https:// daemon with"),
    ("--client-cert", "ROTATOR_CLIENT_CERT", "Client certificate (PEM) for a daemon that asks"),
    ("--client-key", "ROTATOR_CLIENT_KEY", "Its private key (PEM), unless inside --client-cert"),
]


def _unspecified(host: str) -> bool:
    import ipaddress

    try:
        return not host or ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _client(
    url: str | None, token_file: Path | None, config_file: Path | None = None
) -> AdminClient:
    from rotator.cli.client import DEFAULT_URL, AdminClient, read_token

    if config_file is not None:
        server = _load(config_file).server
        if url is None:
            host, _, port = server.admin_listen.rpartition(":")
            host = host.strip("[]")
            # A daemon listening on every address is reached on loopback from its own host.
            if _unspecified(host):
                host = "::1" if ":" in host else "127.0.0.1"
            url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        if token_file is None and server.admin_token_file is not None:
            token_file = server.admin_token_file
    tls = click.get_current_context().meta.get("rotator.tls", {})
    return AdminClient(url or DEFAULT_URL, read_token(token_file), **tls)


def _talk(work: Callable[[], T]) -> T:
    """Run ``work``; a DaemonError becomes its message on stderr and its exit status."""
    from rotator.cli.client import DaemonError

    try:
        return work()
    except DaemonError as exc:
        click.echo(f"rotator: {exc}", err=True)
        sys.exit(exc.exit_code)


@cli.command()
@admin_options
def status(
    url: str | None, token_file: Path | None, config_file: Path | None, as_json: bool
) -> None:
    """The daemon's view of every key: status, expiry, days left, what to do next."""
    from rotator.cli.table import healthy, render

    listing = _talk(lambda: _client(url, token_file, config_file).keys())
    rows = listing["keys"]
    critical = listing["critical_days"]
    if as_json:
        click.echo(json.dumps(listing, indent=2))
    else:
        click.echo(
            render(
                rows,
                critical_days=critical,
                warn_days=listing["warn_days"],
                colour=sys.stdout.isatty(),
            )
        )
    sys.exit(EXIT_OK if healthy(rows, critical) else EXIT_PROBLEM)


def _operate(
    url: str | None,
    token_file: Path | None,
    config_file: Path | None,
    name: str,
    action: str,
    body: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The operation's answer, or None (after saying so) when it outlived the daemon's wait."""
    code, answer = _talk(lambda: _client(url, token_file, config_file).operate(name, action, body))
    if code == 202:
        click.echo(f"rotator: {answer.get('detail')}; follow it with `rotator status`", err=True)
        return None
    result: dict[str, Any] = answer
    return result


def _report(name: str, answer: dict[str, Any] | None, as_json: bool, ok: frozenset[str]) -> None:
    from rotator.cli.client import answer_line

    if answer is None:
        sys.exit(EXIT_PROBLEM)
    click.echo(json.dumps(answer, indent=2) if as_json else answer_line(name, answer))
    sys.exit(EXIT_OK if answer.get("result") in ok else EXIT_PROBLEM)


@cli.command()
@admin_options
@click.option(
    "--version",
    "version",
    type=click.IntRange(min=1),
    default=None,
    help="Promote this Vault version (default: the newest).",
)
@click.option("--force", is_flag=True, help="Re-deliver the active version to every sink.")
@click.option(
    "--break-lease",
    is_flag=True,
    help="Take over another instance's lease on NAME (only if that instance is dead).",
)
@click.argument("name")
def rotate(
    url: str | None,
    token_file: Path | None,
    config_file: Path | None,
    as_json: bool,
    version: int | None,
    force: bool,
    break_lease: bool,
    name: str,
) -> None:
    """Ask the daemon to rotate NAME now (exit 0 rotated or nothing to do, 1 otherwise)."""
    from rotator.cli.client import ROTATE_OK

    body: dict[str, Any] = {"version": version, "force": force}
    if break_lease:
        body["break_lease"] = True
    answer = _operate(url, token_file, config_file, name, "rotate", body)
    _report(name, answer, as_json, ROTATE_OK)


@cli.command()
@admin_options
@click.argument("name")
def rollback(
    url: str | None, token_file: Path | None, config_file: Path | None, as_json: bool, name: str
) -> None:
    """Ask the daemon to go back to the previous version, if it still verifies."""
    from rotator.cli.client import ROLLBACK_OK

    answer = _operate(url, token_file, config_file, name, "rollback")
    _report(name, answer, as_json, ROLLBACK_OK)


@cli.command()
@admin_options
@click.argument("name")
def verify(
    url: str | None, token_file: Path | None, config_file: Path | None, as_json: bool, name: str
) -> None:
    """Ask the daemon to verify NAME against Mistral now (exit 0 valid, 1 otherwise)."""
    from rotator.cli.table import render

    answer = _operate(url, token_file, config_file, name, "verify")
    if answer is None:
        sys.exit(EXIT_PROBLEM)
    if as_json:
        click.echo(json.dumps(answer, indent=2))
    else:
        click.echo(render([answer], critical_days=0, warn_days=0, colour=sys.stdout.isatty()))
    sys.exit(EXIT_OK if answer.get("status") == "valid" else EXIT_PROBLEM)


# --- Mistral's Admin API, through the daemon --------------------------------------------------


@cli.command()
@admin_options
@click.argument("name")
def mint(
    url: str | None, token_file: Path | None, config_file: Path | None, as_json: bool, name: str
) -> None:
    """Ask the daemon to mint a replacement for NAME now (0 minted and active, 1 failed)."""
    answer = _operate(url, token_file, config_file, name, "mint")
    if answer is None:
        sys.exit(EXIT_PROBLEM)
    if as_json:
        click.echo(json.dumps(answer, indent=2))
    elif answer.get("result") == Outcome.ROTATED:
        click.echo(
            f"{name}: minted and active as version {answer.get('version')} "
            f"(Mistral key_id {answer.get('mistral_key_id')})"
        )
    else:
        click.echo(f"{name}: {answer.get('result')}: {answer.get('reason') or ''}".rstrip(": "))
    sys.exit(EXIT_OK if answer.get("result") == Outcome.ROTATED else EXIT_PROBLEM)


@cli.command()
@admin_options
def inventory(
    url: str | None, token_file: Path | None, config_file: Path | None, as_json: bool
) -> None:
    """Every key of the Mistral organization, and which managed key it is (if any)."""
    listing = _talk(lambda: _client(url, token_file, config_file).inventory())
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return
    click.echo(_inventory_table(listing.get("keys", [])))


def _inventory_table(rows: list[dict[str, Any]]) -> str:
    header = ("NAME", "WORKSPACE", "KEY", "CREATED", "EXPIRES", "LAST USED", "MANAGED")
    lines = [header]
    for r in rows:
        lines.append(
            (
                str(r.get("name") or ""),
                str(r.get("workspace") or "-"),
                f"...{r['fingerprint']}" if r.get("fingerprint") else "-",
                str(r.get("created_at") or "-")[:10],
                str(r.get("expires_at") or "never")[:10],
                str(r.get("last_used") or "-")[:10],
                str(r.get("managed_key") or "(unmanaged)"),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


@cli.command()
@admin_options
@click.option("--ttl", default=None, help="How long the link works (default intake.link_ttl).")
@click.option("--revoke", is_flag=True, help="Withdraw every open link of NAME instead.")
@click.argument("name")
def intake(
    url: str | None,
    token_file: Path | None,
    config_file: Path | None,
    as_json: bool,
    ttl: str | None,
    revoke: bool,
    name: str,
) -> None:
    """A one-time link for NAME's owner to hand over the next key (printed once)."""
    answer = _talk(
        lambda: _client(url, token_file, config_file).intake(name, ttl=ttl, revoke=revoke)
    )
    if as_json:
        click.echo(json.dumps(answer, indent=2))
    elif revoke:
        click.echo(f"{name}: {answer['revoked']} open link(s) withdrawn")
    else:
        click.echo(answer["url"])
        click.echo(f"works once, until {answer['expires_at']}", err=True)
    sys.exit(EXIT_OK)


def main() -> None:
    # rich is no dependency of the rotator, but development tools (bandit, schemathesis)
    # install it, and then structlog and httpx import it (with pygments) at once for what
    # the rotator never uses: structlog's pretty tracebacks (the rotator formats exceptions
    # itself, format_exc_info) and httpx's own command line. That is 13 MiB of the daemon's
    # memory and about 90 ms of ``rotator status``. A None entry makes both take their
    # "rich is not installed" path, as in a production install. Here, in the process's
    # entry point only: a test process importing this module keeps rich for its own tools.
    sys.modules.setdefault("rich", None)  # type: ignore[arg-type]
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]  # imports pygments first
    cli()
