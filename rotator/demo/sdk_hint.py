"""The demo's hint for pointing Mistral's own Python SDK at the stand-in.

A user's SDK-based tooling should work against ``make demo`` as against Mistral. The snippet
reads a demo key from OpenBao itself, so the key is never printed or put on a command line.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

DEMO_KEY_PATH = "secret/data/mistral/demo-healthy"
SNIPPET_END = "EOF"


def sdk_hint(vault_url: str, token_file: Path, standin_url: str) -> str:
    """A paste-able shell snippet: the demo's Python reads a key from OpenBao, lists models."""
    have_sdk = importlib.util.find_spec("mistralai") is not None
    install = "" if have_sdk else f"first: {sys.executable} -m pip install 'mistralai>=3.7,<4'; "
    # Unindented: the heredoc is Python source.
    return f"""List the stand-in's models with Mistral's own SDK ({install}\
the key is read from OpenBao, never shown):
{sys.executable} - <<'{SNIPPET_END}'
import json, urllib.request
from mistralai.client import Mistral
token = open("{token_file}").read().strip()
ask = urllib.request.Request("{vault_url}/v1/{DEMO_KEY_PATH}", headers={{"X-Vault-Token": token}})
key = json.load(urllib.request.urlopen(ask))["data"]["data"]["api_key"]
with Mistral(api_key=key, server_url="{standin_url}") as client:
    print([model.id for model in client.models.list().data])
{SNIPPET_END}
"""
