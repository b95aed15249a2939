"""Issue 13: the layers and the private-name rule hold (import-linter), and no source file or function is too long.

``lint-imports`` checks the contracts of ``pyproject.toml`` ``[tool.importlinter]``: the layer order, private
modules imported only from within their parent package, and the ``private_names`` contract of
``tools/private_names.py`` (no module uses another module's private name). A negative test shows the last one
can fail.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "dlnlab"
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80


def _lint(cwd: Path, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "import-linter is a test dependency (pip install -e '.[test]')"
    paths = [str(ROOT / "tools")] + ([str(extra_path)] if extra_path else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths + [os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([exe, "--no-cache"], check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_import_contracts_are_kept():
    res = _lint(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr


def test_private_name_contract_catches_a_violation(tmp_path):
    pkg = tmp_path / "src" / "toypkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def _helper():\n    return 1\n\n\ndef public():\n    return 2\n")
    (pkg / "b.py").write_text("from .a import _helper\n")
    (pkg / "c.py").write_text("from . import a\n\n\ndef f():\n    return a._helper()\n")
    (pkg / "d.py").write_text("from .a import public\n")
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent("""
        [tool.importlinter]
        root_package = "toypkg"
        contract_types = ["private_names: private_names.PrivateNamesContract"]
        [[tool.importlinter.contracts]]
        name = "no private names"
        type = "private_names"
    """))
    res = _lint(tmp_path, tmp_path / "src")
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert "toypkg.b:1 imports the private name _helper" in out and "toypkg.c:5 uses the private name a._helper" in out
    assert "toypkg.d" not in out


def _sources():
    return sorted(p for p in SRC.rglob("*.py"))


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(SRC)))
def test_no_long_file_or_function(path):
    text = path.read_text()
    n_lines = len(text.splitlines())
    assert n_lines <= MAX_FILE_LINES, f"{path.relative_to(ROOT)}: {n_lines} lines (at most {MAX_FILE_LINES})"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines, l.{node.lineno})"
            for node in ast.walk(ast.parse(text)) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{path.relative_to(ROOT)}: functions over {MAX_FUNCTION_LINES} lines: {', '.join(long)}"
