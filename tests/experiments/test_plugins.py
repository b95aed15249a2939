"""Plugins (issue 17 item 7): a package registering experiments through the entry-point group
``dlnlab.experiments`` (``experiments.base.Registry``) is listed, run and reproduced like a built-in one. The example
plugin ``tests/plugin_example`` (the template of ``docs/plugins.md``) is pip-installed into a temporary target
(its own pyproject's entry point, no network) and reproduced with ``dlnlab reproduce --smoke --paper EX``; its rows
are computed ``claims.Claim`` rows. The index (``experiments/index.py``) is keyed on the plugin's files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dlnlab.errors import ConfigError
from dlnlab.experiments import PAPERS, REGISTRY, ExperimentResult, register, register_paper
from dlnlab.experiments import index as registry_index
from dlnlab.experiments.claims import Claim

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "plugin_example"
DLNLAB = str(Path(sys.executable).with_name("dlnlab"))  # the console script of this environment


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """The example plugin installed by pip (from a copy: the build leaves nothing in the repository)."""
    tmp = tmp_path_factory.mktemp("plugin")
    shutil.copytree(EXAMPLE, tmp / "src", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(tmp / "site"), str(tmp / "src")],
                          check=False, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    eps = (next((tmp / "site").glob("dlnlab_example_paper-*.dist-info")) / "entry_points.txt").read_text()
    assert "[dlnlab.experiments]" in eps and "dlnlab_example_paper" in eps
    return tmp / "site"


def run(args, site: Path, cache: Path, exe=(DLNLAB,)) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "DLNLAB_CACHE_DIR": str(cache), "COLUMNS": "250"}
    return subprocess.run([*exe, *args], check=False, capture_output=True, text=True, timeout=900, env=env)


def test_plugin_is_reproduced_and_listed(plugin_site, tmp_path, monkeypatch):
    out, cache = tmp_path / "out", tmp_path / "cache"
    proc = run(["reproduce", "--smoke", "--paper", "EX", "--out", str(out)], plugin_site, cache)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "1 experiments." in proc.stdout
    monkeypatch.setitem(PAPERS, "EX", "A. Example (2026) — label-noise SGD settles at variance ησ²/2")  # to read it back
    res = ExperimentResult.from_json((out / "experiments" / "example_label_noise" / "result.json").read_text())
    assert [type(c) for c in res.claims] == [Claim, Claim]  # computed rows, judged again when read back
    assert {c.paper for c in res.claims} == {"EX"} and [c.kind for c in res.claims] == ["measured", "theory"]
    assert [c.verdict for c in res.claims] == ["holds", "holds"]
    assert (out / "report.html").is_file() and "example_label_noise" in (out / "claims.csv").read_text()
    # once the index is cached (by that run, or by this first list if an experiment file changed meanwhile: the
    # checkout may be edited), dlnlab list answers from it without importing JAX
    assert run(["list"], plugin_site, cache).returncode == 0
    probe = ("import sys; sys.argv = ['dlnlab', 'list']\nfrom dlnlab.cli import main\ntry:\n    main()\n"
             "except SystemExit:\n    pass\nprint('jax imported:', 'jax' in sys.modules)")
    listed = run(["-c", probe], plugin_site, cache, exe=(sys.executable,))
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert "jax imported: False" in listed.stdout
    line = next(ln for ln in listed.stdout.splitlines() if ln.startswith("example_label_noise "))
    assert "[EX]" in line and "(plugin example_paper = dlnlab_example_paper (dlnlab-example-paper))" in line
    assert "[EX] A. Example (2026)" in listed.stdout


def test_plugin_files_are_in_the_index_key(plugin_site, monkeypatch):
    """An edit of an installed plugin (its mtime) makes a new index key, so ``dlnlab list`` is not stale."""
    monkeypatch.syspath_prepend(str(plugin_site))
    key = registry_index.index_key()
    init = plugin_site / "dlnlab_example_paper" / "__init__.py"
    st = init.stat()
    os.utime(init, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert registry_index.index_key() != key  # an edit of the plugin makes a new index


def test_register_paper_checks():
    register_paper("J", PAPERS["J"])  # the same title again: nothing happens
    with pytest.raises(ConfigError, match="already registered"):
        register_paper("J", "someone else — another paper")
    with pytest.raises(ConfigError, match="short identifier"):
        register_paper("not a key", "A. B. (2026) — title")
    with pytest.raises(ConfigError, match="non-empty"):
        register_paper("NEWKEY", " ")
    assert "NEWKEY" not in PAPERS


def test_register_needs_a_known_paper():
    with pytest.raises(ConfigError, match="register_paper"):
        register("never_registered", paper="NOPE", claim="c", cost="1 s", quick={"seed": 0}, full={"seed": 0})(print)
    assert "never_registered" not in REGISTRY


def test_index_matches_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("DLNLAB_CACHE_DIR", str(tmp_path))
    idx = registry_index.index()
    assert {e.name: (e.paper, e.claim, e.cost) for e in idx.experiments} == {
        e.name: (e.paper, e.claim, e.cost) for e in REGISTRY.values()}
    assert idx.papers == dict(PAPERS)
    (cached,) = tmp_path.glob("registry-*.json")
    assert json.loads(cached.read_text())["papers"] == idx.papers

    def no_load():
        raise AssertionError("the cached index was not used")

    monkeypatch.setattr(registry_index, "from_registry", no_load)
    assert registry_index.index() == idx
