"""The command line answers at once (issue 17 item 4): ``dlnlab --help``, ``dlnlab list`` and every command's
``--help`` import neither JAX nor the experiment modules (checked in a fresh interpreter through ``sys.modules``);
help texts keep ``[section]`` names (no Rich markup); shell completion is installed and completes experiment
names and paper keys. No timing is asserted here (the machine is shared): ``dlnlab bench --only CLI`` measures
the start-up against a bare ``import jax``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from dlnlab.cli import app
from dlnlab.experiments import REGISTRY
from dlnlab.experiments.index import index

DLNLAB = str(Path(sys.executable).with_name("dlnlab"))  # the console script of this environment
HEAVY = ("jax", "jaxlib", "scipy", "matplotlib", "xarray", "numpy", "dlnlab.engines", "dlnlab.experiments.base")
COMMANDS = sorted(name for name, cmd in typer.main.get_command(app).commands.items() if not cmd.hidden)

# each invocation in one fresh interpreter: the console script's main(), then the heavy modules it imported
PROBE = """
import json, sys
from dlnlab.cli import main
heavy, modules = {}, json.loads(sys.argv[2])
for args in json.loads(sys.argv[1]):
    sys.argv = ["dlnlab", *args]
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None), (args, exc.code)
    heavy[" ".join(args)] = sorted(m for m in modules if m in sys.modules)
print("HEAVY=" + json.dumps(heavy))
"""


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    """A cache directory holding the registry's current index (built here from the loaded registry, as the first
    ``dlnlab list`` after an edit would)."""
    cache = tmp_path_factory.mktemp("dlnlab-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DLNLAB_CACHE_DIR", str(cache))
        index()
    assert list(cache.glob("registry-*.json"))
    return cache


def probe(invocations: list[list[str]], cache) -> tuple[str, dict]:
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(invocations), json.dumps(HEAVY)],
                          check=False, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "DLNLAB_CACHE_DIR": str(cache), "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    head, _, tail = proc.stdout.rpartition("HEAVY=")
    return head, json.loads(tail)


def test_help_list_and_command_help_import_no_jax(warm_cache):
    invocations = [["--help"], ["list"], *([c, "--help"] for c in COMMANDS)]
    out, heavy = probe(invocations, warm_cache)
    assert heavy == {" ".join(args): [] for args in invocations}
    for name in REGISTRY:  # dlnlab list printed every registered experiment
        assert f"\n{name} " in "\n" + out, name


def test_list_shows_the_registry(warm_cache, monkeypatch):
    monkeypatch.setenv("DLNLAB_CACHE_DIR", str(warm_cache))
    result = CliRunner().invoke(app, ["list"], terminal_width=200)
    assert result.exit_code == 0, result.output
    names = [line.split()[0] for line in result.output.splitlines() if line and not line.startswith("[")]
    assert sorted(names) == sorted(REGISTRY)
    for e in REGISTRY.values():
        assert f"[{e.paper}]" in result.output and e.claim in result.output


def test_train_help_keeps_section_names():
    """Rich markup swallowed ``[teacher]``-style brackets; help is plain text."""
    result = CliRunner().invoke(app, ["train", "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for section in ("[teacher]/[network]/[init]", "[modes]", "[diagonal]", "[relu]"):
        assert section in text, section


def test_show_completion_prints_a_script():
    result = CliRunner().invoke(app, ["--show-completion", "bash"], prog_name="dlnlab")
    assert result.exit_code == 0, (result.output, "".join(traceback.format_exception(*result.exc_info)))
    assert "_DLNLAB_COMPLETE=complete_bash" in result.output and "complete " in result.output


def test_completion_of_names_and_papers(warm_cache):
    env = {**os.environ, "DLNLAB_CACHE_DIR": str(warm_cache), "_DLNLAB_COMPLETE": "complete_bash"}
    run = subprocess.run([DLNLAB], check=False, capture_output=True, text=True, timeout=120,
                         env={**env, "COMP_WORDS": "dlnlab run sa", "COMP_CWORD": "2"})
    assert sorted(run.stdout.split()) == sorted(n for n in REGISTRY if n.startswith("sa")), run.stderr
    paper = subprocess.run([DLNLAB], check=False, capture_output=True, text=True, timeout=120,
                           env={**env, "COMP_WORDS": "dlnlab reproduce --paper ", "COMP_CWORD": "3"})
    assert {"J", "C", "Z", "S"} <= set(paper.stdout.split()), paper.stderr


def test_unknown_paper_is_one_line(warm_cache, monkeypatch):
    monkeypatch.setenv("DLNLAB_CACHE_DIR", str(warm_cache))
    result = CliRunner().invoke(app, ["reproduce", "--smoke", "--paper", "nope"])
    assert result.exit_code == 2
    assert "--paper" in result.output and "'nope'" in result.output
