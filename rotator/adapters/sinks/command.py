"""The command reload: run a program (no shell) after the key file is in place."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from rotator.adapters.sinks.base import ReloadAction, scrub
from rotator.config.sinks import CommandReload
from rotator.domain.model import Delivery
from rotator.errors import SinkError
from rotator.logs import REDACTOR

_STDERR_TAIL = 500
# The daemon's own credentials: a reload command has no business with them.
_DAEMON_SECRETS = frozenset({"VAULT_TOKEN", "BAO_TOKEN", "ROTATOR_ADMIN_TOKEN"})


class CommandReloadAction(ReloadAction):
    """Runs ``command`` (no shell). The key is never on its command line; it is in its
    environment only under ``pass_key_env`` when that is configured.

    The command must exit 0 within ``timeout_seconds``, and close its stderr: one that
    starts a long-lived process should detach it from its output (or it is killed too).
    """

    def __init__(self, spec: CommandReload) -> None:
        self.spec = spec
        self.program = spec.command[0]

    async def run(self, delivery: Delivery) -> None:
        env = child_env(delivery.api_key, self.spec.pass_key_env)
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.spec.command,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise SinkError(f"reload command {self.program}: {exc.strerror}") from None
        pipe = _pipe_inode(proc)
        try:
            async with asyncio.timeout(self.spec.timeout_seconds):
                _, stderr = await proc.communicate()
        except TimeoutError:
            await _kill_group(proc, pipe)
            raise SinkError(
                f"reload command {self.program} did not finish within "
                f"{self.spec.timeout_seconds:g}s and was killed"
            ) from None
        except asyncio.CancelledError:
            await _kill_group(proc, pipe)
            raise
        self._check(proc.returncode, stderr, delivery.api_key)

    def _check(self, code: int | None, stderr: bytes, api_key: str) -> None:
        if code == 0:
            return
        outcome = f"was killed by signal {-code}" if code and code < 0 else f"exited with {code}"
        # Scrubbed whole, then cut: a key cut in half by the tail is no longer recognised.
        text = " ".join(stderr.decode("utf-8", "replace").split())
        tail = scrub(text, api_key)[-_STDERR_TAIL:]
        detail = f": {tail}" if tail else ""
        raise SinkError(f"reload command {self.program} {outcome}{detail}")


async def _kill_group(proc: asyncio.subprocess.Process, pipe: int | None) -> None:
    """Kill the command and whatever it started (its own session), then reap it.

    Children count too: one that keeps stderr open would hold up the wait indefinitely.
    A helper that left the session (``setsid``) but kept the output is found by the pipe
    it holds: without this, each retry of the reload left one more behind.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    for pid in _holders(pipe):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    await proc.wait()


def _pipe_inode(proc: asyncio.subprocess.Process) -> int | None:
    """The inode of the pipe the command writes its stderr to (Linux), to find its holders."""
    transport = getattr(proc, "_transport", None)
    pipe = transport.get_pipe_transport(2) if transport is not None else None
    stream = pipe.get_extra_info("pipe") if pipe is not None else None
    try:
        return os.fstat(stream.fileno()).st_ino if stream is not None else None
    except (OSError, ValueError):
        return None


def _holders(inode: int | None) -> list[int]:
    """Other processes with that pipe open (reading /proc; none where there is no /proc)."""
    if inode is None:
        return []
    wanted, me, found = f"pipe:[{inode}]", os.getpid(), []
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit() or int(entry.name) == me:
                continue
            with contextlib.suppress(OSError):
                fds = os.listdir(f"/proc/{entry.name}/fd")
                if any(os.readlink(f"/proc/{entry.name}/fd/{fd}") == wanted for fd in fds):
                    found.append(int(entry.name))
    return found


def child_env(api_key: str, pass_key_env: str | None) -> dict[str, str]:
    """The daemon's environment without its credentials or any known secret value."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in _DAEMON_SECRETS
        and not (api_key and api_key in value)
        and REDACTOR.scrub(value) == value
    }
    if pass_key_env:
        env[pass_key_env] = api_key
    return env
