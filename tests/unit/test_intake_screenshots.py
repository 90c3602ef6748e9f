"""The operator guide shows every intake page and outcome in English, German and Italian.

A screenshot per page and language (made by the browser test with
ROTATOR_UPDATE_SCREENSHOTS=1), each shown in docs/operator-guide.md; every answer the intake
can give is either among the pages or says why a browser never sees it; and every one of
them is translated. A new outcome without its screenshots or words fails here.
"""

from __future__ import annotations

import ast
import struct

import pytest

from rotator.intake import i18n
from tests.intake_pages import GUIDE, LANGUAGES, NOT_SHOWN, PAGES, ROOT, IntakePage, image

PNG = b"\x89PNG\r\n\x1a\n"
UPDATE = "ROTATOR_UPDATE_SCREENSHOTS=1 .venv/bin/pytest tests/integration/test_intake_browser.py"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.id)
def test_every_page_has_a_screenshot_in_every_language(page: IntakePage, language: str) -> None:
    path = image(language, page)
    assert path.is_file(), f"no {path.name}: `{UPDATE}` makes it"
    data = path.read_bytes()
    assert data.startswith(PNG), f"{path.name} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    # What a phone shows (the form: the whole page), and small enough to keep in git.
    assert width == 360, f"{path.name} is {width} px wide"
    assert height == 420 or page.id == "1-form", f"{path.name} is {height} px high"
    assert len(data) < 150_000, f"{path.name} has {len(data)} bytes"
    assert f"(img/{path.name})" in GUIDE.read_text(encoding="utf-8"), (
        f"the operator guide does not show {path.name}"
    )


def _answers() -> set[str]:
    """The words the intake can answer with: i18n keys named in its service and page code."""
    found: set[str] = set()
    for module in ("service.py", "web.py"):
        tree = ast.parse((ROOT / "rotator" / "intake" / module).read_text(encoding="utf-8"))
        found |= {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        }
    return found & set(i18n.EN)


def test_every_answer_is_shown_or_says_why_not() -> None:
    shown = {message for page in PAGES for message in page.messages}
    missing = _answers() - shown - set(NOT_SHOWN)
    assert not missing, f"answers without a screenshot in tests/intake_pages.py: {missing}"
    assert not shown & set(NOT_SHOWN)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_answer_is_translated(language: str) -> None:
    words = i18n.STRINGS[language]
    for key in {message for page in PAGES for message in page.messages} | set(NOT_SHOWN):
        assert words.get(key, "").strip(), f"{key} has no {language} words"
        if language != "en":
            assert words[key] != i18n.EN[key], f"{key} is English in {language}"
