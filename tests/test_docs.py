"""The generated reference pages in docs/ match the code they describe."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
gen_docs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen_docs)


@pytest.mark.parametrize("page", sorted(gen_docs.PAGES))
def test_generated_page_is_current(page):
    assert (ROOT / "docs" / page).read_text() == gen_docs.PAGES[page](), \
        f"docs/{page} is stale: run `python scripts/gen_docs.py`"


def test_cli_page_names_every_command():
    text = (ROOT / "docs" / "cli.md").read_text()
    for name in ("prepare", "extract-teacher", "distill", "evaluate", "recipes validate", "shards verify"):
        assert f"`xmd {name}`" in text
