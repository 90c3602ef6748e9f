"""docs/api.md is generated from the admin API's OpenAPI document and must not drift from it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_api_docs", ROOT / "scripts" / "gen_api_docs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_reference_is_current() -> None:
    """After changing rotator/admin*.py, run: .venv/bin/python scripts/gen_api_docs.py"""
    on_disk = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert on_disk == generator().current(), "docs/api.md is stale: run scripts/gen_api_docs.py"


def test_reference_covers_every_operation_and_status() -> None:
    from rotator.admin.routes import openapi_document

    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    for path, methods in openapi_document()["paths"].items():
        for method, operation in methods.items():
            section = text.split(f"### `{method.upper()} {path}`", 1)[1].split("\n### ", 1)[0]
            for code in operation["responses"]:
                assert f"\n| {code} |" in section, (method, path, code)


def test_check_mode_fails_on_a_stale_page(tmp_path: Path) -> None:
    gen = generator()
    stale = tmp_path / "api.md"
    stale.write_text("old\n")
    gen.OUT = stale
    gen.ROOT = tmp_path
    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0
    assert gen.main(["--check"]) == 0
