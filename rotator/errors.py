"""One root exception; the CLI prints only the message of these, never a traceback.

No message built here may contain a key value: callers pass names, paths and versions.
"""

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
"""The CLI's exit statuses (contract: CLI): success; a key or the daemon has a problem;
the command could not run as given (usage, configuration, token, address)."""


class RotatorError(Exception):
    """Root of every error the daemon expects and reports."""


class ConfigError(RotatorError):
    """The configuration is unusable; ``problems`` lists every ``field.path: reason``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))


class VaultError(RotatorError):
    """Vault could not answer (down, sealed, timed out): retry later."""


class VaultPermissionDenied(VaultError):
    """Vault refused access to ``path`` even after logging in again."""

    def __init__(self, path: str, reason: str = "") -> None:
        self.path = path
        self.reason = reason
        """Vault's own words ("invalid role or secret ID"): they hold no secret, and tell a
        wrong role name from a wrong secret id from a policy that misses a path."""
        super().__init__(f"permission denied on {path}" + (f": {reason}" if reason else ""))


class SecretNotFound(RotatorError):
    """The key's secret (or the asked version) does not exist or was deleted/destroyed."""


class BadSecret(RotatorError):
    """The secret exists but its data is unusable; ``field`` names what is wrong."""

    def __init__(self, path: str, field: str, reason: str) -> None:
        self.path = path
        self.field = field
        self.reason = reason
        super().__init__(f"bad secret at {path}: field {field!r} {reason}")


class StateProblem(RotatorError):
    """The key's state secret cannot be used as it is: written for another secret, mount or
    namespace, or its newest version deleted. Nothing is delivered until ops act.

    ``event`` is the log event, ``action`` what to do; ``fields`` name paths and versions.
    """

    def __init__(self, event: str, message: str, *, action: str, **fields: object) -> None:
        self.event = event
        self.action = action
        self.fields = fields
        super().__init__(f"{message}: {action}")


class CasConflict(RotatorError):
    """A check-and-set write lost against another writer."""


class SinkError(RotatorError):
    """A sink could not take the key."""


class NotPossible(RotatorError):
    """An operator asked for something that cannot be done as asked (a version that never
    existed, a rollback with nothing older to go back to): nothing was changed, and the
    message says why in a sentence."""
