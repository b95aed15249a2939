"""An import-linter contract type: no module uses another module's private name.

``from pkg.mod import _name`` and ``mod._name`` (``mod`` bound to an imported module of the root package) are
broken imports unless ``_name`` is a private *module* imported from within its parent package (the diffrax style:
private ``_x.py`` modules re-exported by name in the package ``__init__``); that case is the ``private_modules``
contract's. Dunder names (``__version__``) are public.

Configured in ``pyproject.toml`` (``[tool.importlinter]``, ``contract_types``); run by ``lint-imports`` from the
repository root with ``tools/`` on ``PYTHONPATH`` (``tests/test_architecture.py`` does this).
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from importlinter.application import output
from importlinter.domain.contract import Contract, ContractCheck


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _source(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    return Path(spec.origin) if spec and spec.origin and spec.origin.endswith(".py") else None


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _violations(module: str, graph_modules: set[str], root: str) -> list[str]:
    path = _source(module)
    if path is None:
        return []
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    bound: dict[str, str] = {}  # local name -> imported module of the root package
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == root:
                    bound[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else root
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, is_package, node)
            if source.split(".")[0] != root:
                continue
            for alias in node.names:
                target = f"{source}.{alias.name}"
                if target in graph_modules:
                    bound[alias.asname or alias.name] = target
                    if _private(alias.name) and not module.startswith(source):
                        found.append(f"{module}:{node.lineno} imports the private module {target}")
                elif _private(alias.name):
                    found.append(f"{module}:{node.lineno} imports the private name {alias.name} from {source}")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name)
                and node.value.id in bound):
            target = f"{bound[node.value.id]}.{node.attr}"
            if target not in graph_modules or not module.startswith(bound[node.value.id]):
                found.append(f"{module}:{node.lineno} uses the private name {node.value.id}.{node.attr}")
    return found


class PrivateNamesContract(Contract):
    """Kept when no module of the root package uses a private name of another module."""

    type_name = "private_names"

    def check(self, graph, verbose: bool) -> ContractCheck:
        modules = set(graph.modules)
        roots = {m.split(".")[0] for m in modules}
        found = [v for m in sorted(modules) for root in roots if m.split(".")[0] == root
                 for v in _violations(m, modules, root)]
        return ContractCheck(kept=not found, metadata={"violations": found})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for line in check.metadata["violations"]:
            output.print_error(line, bold=False)
            output.new_line()
