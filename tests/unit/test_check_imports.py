"""scripts/check_imports.py: an import cycle anywhere in a package fails ``make lint``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "check_imports.py"


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    pkg = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        path = pkg / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return pkg


def _check(pkg: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(pkg)], capture_output=True, text=True, check=False
    )


def test_a_lazy_import_cycle_through_a_subpackage_fails_and_is_named(tmp_path: Path) -> None:
    pkg = _package(
        tmp_path,
        {
            "a.py": "from pkg.sub import b\n",
            "sub/__init__.py": "",
            "sub/b.py": "def later():\n    from pkg.c import C\n    return C\n",
            "c.py": "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from pkg import a\nclass C: ...\n",
        },
    )
    run = _check(pkg)
    assert run.returncode == 1
    assert "import cycle: pkg.a -> pkg.sub.b -> pkg.c -> pkg.a" in run.stderr


def test_relative_imports_count_too(tmp_path: Path) -> None:
    pkg = _package(tmp_path, {"a.py": "from . import b\n", "b.py": "from .a import x\n"})
    run = _check(pkg)
    assert run.returncode == 1
    assert "pkg.a -> pkg.b -> pkg.a" in run.stderr


def test_a_package_without_a_cycle_passes(tmp_path: Path) -> None:
    pkg = _package(
        tmp_path,
        {
            "__init__.py": "from pkg import a\n",  # a package importing its own module
            "a.py": "import os\nfrom pkg.b import f\n",
            "b.py": "def f():\n    import pkg.c\n",
            "c.py": "",
        },
    )
    run = _check(pkg)
    assert run.returncode == 0, run.stderr


def test_the_rotator_package_has_no_import_cycle() -> None:
    run = _check(ROOT / "rotator")
    assert run.returncode == 0, run.stderr
    assert "no import cycle in rotator" in run.stdout
