"""The documentation site: ``mkdocs build --strict`` (the tutorials executed, the API, CLI, config and experiment
references generated, links and cross-references checked) once per test session, the generated pages against
their sources, and the built pages rendered in headless Chromium."""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
yaml = pytest.importorskip("yaml", reason="PyYAML comes with mkdocs")

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BUILD_TIMEOUT_S = 1800


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    """``mkdocs build --strict`` of ``config`` into ``site``, in the repository root (the gen-files scripts and the
    griffe extension are named relative to it)."""
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernels' inline backend shows figures
    env.update(NO_MKDOCS_2_WARNING="1", DISABLE_MKDOCS_2_WARNING="true")
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
                          check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """The site built from ``mkdocs.yml``, once per session: under pytest-xdist the workers share one build (the
    first to take the lock builds, the others wait and read its outcome)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    out, outcome = shared / "docs-site", shared / "docs-site.json"
    with open(shared / "docs-site.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not outcome.exists():
            t0 = time.perf_counter()
            proc = mkdocs_build(ROOT / "mkdocs.yml", out)
            outcome.write_text(json.dumps({"returncode": proc.returncode, "seconds": time.perf_counter() - t0,
                                           "log": proc.stdout + proc.stderr}))
    result = json.loads(outcome.read_text())
    assert result["returncode"] == 0, f"mkdocs build --strict failed:\n{result['log'][-12000:]}"
    return out


def test_every_page_is_built(site):
    """Every page of the nav was built, the tutorials among them (their figures inline)."""
    for page in ("index.html", "concepts/index.html", "getting-started/index.html", "reference/cli/index.html",
                 "reference/config/index.html", "reference/api/engines/index.html", "experiments/index.html"):
        assert (site / page).is_file(), page
    tutorials = sorted(p.stem for p in (ROOT / "docs" / "tutorials").glob("*.py"))
    assert len(tutorials) >= 5
    for name in tutorials:
        html = (site / "tutorials" / name / "index.html").read_text()
        assert re.search(r'<img[^>]+src="data:image/png;base64,', html), f"tutorial {name} shows no figure"


def test_internal_links_resolve(site):
    """Every relative link of every page points at a file of the site: mkdocs checks the links of Markdown pages,
    not those inside the tutorials' notebook HTML. (404.html links from the site root by design.)"""
    broken = []
    for page in set(site.rglob("*.html")) - {site / "404.html"}:
        for url in re.findall(r'(?:href|src)="([^"]+)"', page.read_text()):
            if re.match(r"[a-z]+:|#|//", url):
                continue
            target = (page.parent / url.split("#")[0].split("?")[0]).resolve()
            if not (target.is_file() or (target / "index.html").is_file()):
                broken.append(f"{page.relative_to(site)}: {url}")
    assert broken == []


def test_config_reference_lists_every_field(site):
    """The config reference is generated from the validation table: one row per field and per rule."""
    from dlnlab.config import FIELDS, RULES

    html = (site / "reference" / "config" / "index.html").read_text()
    assert len(re.findall(r"<tr>\s*<td><code>", html)) == len(FIELDS) + len(RULES)
    for key in FIELDS:
        assert f"<code>{key.split('.')[1]}</code>" in html, key
    for rule in RULES:
        assert f"<code>{rule.name}</code>" in html, rule.name


def test_cli_and_experiment_pages_follow_their_sources(site):
    import typer

    from dlnlab.cli import app
    from dlnlab.experiments import REGISTRY

    cli = (site / "reference" / "cli" / "index.html").read_text()
    for name in typer.main.get_command(app).commands:
        assert f'id="dlnlab-{name}"' in cli, name
    for name, exp in REGISTRY.items():
        page = (site / "experiments" / name / "index.html").read_text()
        assert f'<h1 id="{name}"><code>{name}</code>' in page, name
        for key in {k for preset in exp.presets.values() for k in preset}:
            assert f"<td><code>{key}</code></td>" in page, (name, key)


def test_getting_started_has_the_readme_commands():
    """The two set-up commands of the getting-started page are README's (the test one is what .ci/run runs)."""
    def commands(path):
        return re.findall(r"^python3 -m venv .*$", path.read_text(), flags=re.MULTILINE)

    readme = commands(ROOT / "README.md")
    assert len(readme) == 2 and commands(ROOT / "docs" / "getting-started.md") == readme


def _browser(p):
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (installed by .ci/run)")
def test_simulate_api_page_renders(site):
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto((site / "reference" / "api" / "engines" / "index.html").as_uri() + "#dlnlab.engines.simulate")
        heading = page.locator('[id="dlnlab.engines.simulate"]')
        heading.scroll_into_view_if_needed()
        assert heading.is_visible()
        doc = heading.locator("xpath=following-sibling::div[contains(@class, 'doc-contents')][1]")
        assert "Run the ensemble described by" in doc.inner_text()
        assert doc.locator("table").first.is_visible()  # the parameter table
        browser.close()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (installed by .ci/run)")
def test_tutorial_page_renders_its_figures(site):
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto((site / "tutorials" / "01_first_run" / "index.html").as_uri())
        page.wait_for_load_state("load")
        assert page.get_by_role("heading", name="The saddle staircase").first.is_visible()
        figures = page.locator("img[src^='data:image/png']")
        assert figures.count() >= 2
        figures.last.scroll_into_view_if_needed()
        assert figures.last.is_visible()
        widths = page.evaluate("Array.from(document.querySelectorAll(\"img[src^='data:image/png']\"))"
                               ".map(i => i.complete ? i.naturalWidth : 0)")
        browser.close()
    assert all(w > 0 for w in widths), widths


BROKEN = {  # case: (page, its text, what the build log must name)
    "link": ("page.md", "# Page\n\nSee [the missing page](missing.md).\n", "missing.md"),
    "reference": ("page.md", "# Page\n\nSee [`nothing`][dlnlab.conventions.no_such_function].\n", "no_such_function"),
    "tutorial": ("tutorials/t.py", "# %% [markdown]\n# # T\n\n# %%\nraise RuntimeError('a failing cell')\n",
                 "a failing cell"),
}


def _tiny_site_config(docs: Path) -> dict:
    """``mkdocs.yml`` for the pages in ``docs``: the real plugins and options but gen-files, paths made absolute."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    config["plugins"] = [p for p in config["plugins"] if not (isinstance(p, dict) and "gen-files" in p)]
    python = next(p for p in config["plugins"] if isinstance(p, dict) and "mkdocstrings" in p)
    python = python["mkdocstrings"]["handlers"]["python"]
    python["paths"] = [str(ROOT / d) for d in python["paths"]]
    python["options"]["extensions"] = [str(ROOT / e) if e.startswith("docs/") else e
                                       for e in python["options"]["extensions"]]
    pages = sorted(str(p.relative_to(docs)) for p in docs.rglob("*") if p.is_file())
    config.update(docs_dir=str(docs), nav=[{p.rsplit(".", 1)[0]: p} for p in pages])
    config.pop("exclude_docs", None)
    return config


@pytest.mark.parametrize("case", [None, *BROKEN])
def test_strict_build_fails_on_broken_pages(case, tmp_path):
    """The real mkdocs.yml (its strictness, validation and plugin options) on a tiny docs folder: a clean one
    builds, a broken link, an unresolved cross-reference or a failing tutorial cell fails the build."""
    docs = tmp_path / "docs"
    pages = {"index.md": "# Home\n\n[Conventions][dlnlab.conventions]\n", "api.md": "::: dlnlab.conventions\n",
             "tutorials/ok.py": "# %% [markdown]\n# # OK\n\n# %%\nprint(1 + 1)\n"}
    if case is not None:
        pages[BROKEN[case][0]] = BROKEN[case][1]
    for name, text in pages.items():
        (docs / name).parent.mkdir(parents=True, exist_ok=True)
        (docs / name).write_text(text)
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(_tiny_site_config(docs), allow_unicode=True))
    proc = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    log = proc.stdout + proc.stderr
    if case is None:
        assert proc.returncode == 0, log
    else:
        assert proc.returncode != 0, f"a broken {case} built:\n{log}"
        assert BROKEN[case][2] in log, log
