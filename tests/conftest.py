"""Shared fixtures live in tests/fixtures/, one module per real server or stand-in."""

pytest_plugins = [
    "tests.fixtures.openbao",
    "tests.fixtures.mistral",
    "tests.fixtures.receiver",
    "tests.fixtures.daemon",
    "tests.fixtures.prometheus",
]
