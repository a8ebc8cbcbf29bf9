"""The code on the documentation pages runs: every snippet file, as a script.

Pages show Python only through ``literalinclude`` of files that tests run
(``docs/snippets/*.py`` here; example files under their own tests), so no
snippet goes stale.
"""

import pathlib
import re
import runpy

import pytest

ROOT = pathlib.Path(__file__).parents[1]
DOCS = ROOT / "docs"
SNIPPETS = sorted((DOCS / "snippets").glob("*.py"))
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)


# Snippets whose code paths quick tests also take run in the second tier.
SLOW_SNIPPETS = {"deep_pinn", "logging_metrics", "first_loop_equinox"}


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(p, marks=[pytest.mark.slow] if p.stem in SLOW_SNIPPETS else [])
        for p in SNIPPETS
    ],
    ids=lambda p: p.stem,
)
def test_snippet_runs(path, capsys):
    runpy.run_path(str(path), run_name="__main__")


def test_every_snippet_is_on_a_page():
    included = {
        (page.parent / target).resolve()
        for page in PAGES
        for target in re.findall(r"```\{literalinclude\} (\S+)", page.read_text())
    }
    for path in SNIPPETS:
        assert path.resolve() in included, f"{path.name} is on no page"
    for target in included:
        assert target.exists(), target


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_pages_show_python_only_from_files_that_run(page):
    """No inline Python block: it would never run, and go stale."""
    inline = re.findall(
        r"^```+\s*(?:\{code-block\}\s*)?(python|py|pycon)\b",
        page.read_text(),
        flags=re.M,
    )
    assert not inline, f"{page}: use a literalinclude of a tested file"


def test_the_readme_usage_block_is_the_tested_linen_loop():
    """Every code line of the README's Python block is in the snippet that runs."""
    readme = (ROOT / "README.md").read_text()
    (block,) = re.findall(r"^```python\n(.*?)^```", readme, flags=re.M | re.S)
    snippet = {
        line.split("#")[0].rstrip()
        for line in (DOCS / "snippets" / "first_loop_linen.py").read_text().splitlines()
    }
    for line in block.splitlines():
        code = line.split("  #")[0].rstrip()
        assert code in snippet, f"README line not in first_loop_linen.py: {line!r}"
