"""The admin HTTP API: routes, operations, models, auth and the embedded server."""

# Here, not in ``auth``: the CLI's client reads it too and must not import FastAPI.
# The variable's name, not a token.
TOKEN_ENV = "ROTATOR_ADMIN_TOKEN"  # noqa: S105  # nosec B105
