"""The documentation site (docs/): it builds cleanly, every page is there.

Every public symbol is in the API reference; the site builds with warnings as
errors and every cross-reference checked (nitpicky); each manual page, results
page and notebook is reachable from the index under its own title.
"""

import html
import importlib
import json
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parents[1]
DOCS = ROOT / "docs"
PACKAGES = (
    "stablegrad_optax",
    "stablegrad_optax.models",
    "stablegrad_optax.pinn",
    "stablegrad_optax.init",
    "stablegrad_optax.datasets",
)
# Each page of the site and its title (the notebooks keep their own titles).
PAGES = {
    "getting_started": "Getting started",
    "how_it_works": "How StableGrad works",
    "choosing_reference": "Choosing a reference",
    "deep_pinns": "Deep PINNs",
    "bnfree": "BatchNorm-free nets",
    "adamp": "AdamP and SGDP",
    "deepxde": "DeepXDE",
    "scaling": "Scaling: sharding and multi-host",
    "performance": "Performance",
    "development": "Development and layout",
    "results/depth_sweep": "Results: the depth sweep",
    "results/bnfree_stress": "Results: the BatchNorm-free stress test",
    "results/performance": "Results: performance",
    "results/long_budget": "Results: 20,000 steps with the field’s recipe",
    "api": "API reference",
}
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def documented() -> dict[str, set[str]]:
    """The names each module's section of api.rst documents."""
    names: dict[str, set[str]] = {}
    module = None
    for line in (DOCS / "api.rst").read_text().splitlines():
        current = re.match(r"\.\. currentmodule:: (\S+)", line)
        if current:
            module = current.group(1)
        entry = re.match(r"\.\. (?:auto)?(?:function|class|data):: (\w+)", line)
        if entry:
            names.setdefault(module, set()).add(entry.group(1))
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_symbol_is_documented(package):
    public = set(importlib.import_module(package).__all__)
    missing = public - documented().get(package, set())
    assert not missing, f"{package}: add {sorted(missing)} to docs/api.rst"


def test_every_documented_name_exists():
    for package, names in documented().items():
        module = importlib.import_module(package)
        assert names <= set(module.__all__), sorted(names - set(module.__all__))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site, built as the README says (warnings are errors, nitpicky)."""
    out = tmp_path_factory.mktemp("html")
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
        + [str(DOCS), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


@pytest.mark.slow
def test_the_docs_build_without_warnings(site):
    api = (site / "api.html").read_text()
    assert 'id="stablegrad_optax.stablegrad"' in api


def test_the_build_checks_every_cross_reference():
    conf = (DOCS / "conf.py").read_text()
    assert re.search(r"^nitpicky = True$", conf, flags=re.M)
    assert "sphinx.ext.intersphinx" not in conf  # offline: nothing is downloaded
    assert re.search(r'^nb_execution_mode = "off"$', conf, flags=re.M)


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.slow
def test_every_page_is_built_under_its_title_and_linked_from_the_index(site, page):
    built = (site / f"{page}.html").read_text()
    title = re.search(r"<title>(.*?)</title>", built).group(1)
    assert html.unescape(title).startswith(PAGES[page] + " "), title
    index = (site / "index.html").read_text()
    assert f'href="{page}.html"' in index


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
@pytest.mark.slow
def test_every_notebook_is_rendered_with_its_outputs(site, notebook):
    cells = json.loads(notebook.read_text())["cells"]
    heading = "".join(cells[0]["source"]).splitlines()[0].removeprefix("# ")
    built = (site / "notebooks" / f"{notebook.stem}.html").read_text()
    title = html.unescape(re.search(r"<title>(.*?)</title>", built).group(1))
    assert title.startswith(heading + " "), title
    assert f'href="notebooks/{notebook.stem}.html"' in (site / "index.html").read_text()
    # the committed outputs, not a re-execution: the figures are there
    figures = sum(
        "image/png" in output.get("data", {})
        for cell in cells
        for output in cell.get("outputs", ())
    )
    assert built.count("<img") >= figures > 0


def test_results_pages_say_how_they_are_made():
    for page in ("depth_sweep", "bnfree_stress", "performance"):
        text = (DOCS / "results" / f"{page}.md").read_text()
        assert "do not edit by hand" in text and "_report.py`" in text
