"""The admin HTTP API: routes, operations, models, auth and the embedded server."""
