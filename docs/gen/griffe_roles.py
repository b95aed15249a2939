"""Griffe extension: dlnlab's docstrings as mkdocstrings reads them.

**Roles.** The Sphinx roles (``:func:`x```, ``:class:`~a.b.C```, ``:mod:`.m```) become cross-references, and a
role naming nothing in the package fails the strict build.

Each role is resolved in the scope of the object whose docstring holds it (relative ``.module`` paths from its
package, bare names through its imports, ``dlnlab.…`` paths as written). A target inside the package that exists
becomes an optional autoref (a link where the object is rendered, plain code elsewhere); a target that does not
exist — a name renamed or moved without its docstring following — is a warning, hence an error under
``mkdocs build --strict``. Names outside the package (``xarray.Dataset``) stay plain code.

**Parameter lists.** The package writes numpy ``Parameters`` sections as ``name : description`` (the types are in
the signature), then may go on in prose. The numpy parser would read the description as a type and the prose as
more parameters: each item becomes ``name`` with its description indented, and the first paragraph after the
items that is not an item opens a ``Notes`` section.
"""

from __future__ import annotations

import importlib.util
import re

import griffe

ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj):`(~?)([\w.]+)`")
ITEM = re.compile(r"(\*{0,2}\w+(?:, \*{0,2}\w+)*) : (.*)")
ITEM_SECTIONS = ("Parameters", "Other Parameters", "Attributes")


def _numpy_items(text: str) -> str:
    """``name : description`` items as numpy ``name`` + indented description; trailing prose under ``Notes``."""
    lines, out, in_items = text.split("\n"), [], False
    for k, line in enumerate(lines):
        header = k + 1 < len(lines) and re.fullmatch(r"-{3,}", lines[k + 1]) is not None
        if header:
            in_items = line.strip() in ITEM_SECTIONS
        elif in_items and line and not line[0].isspace() and not re.fullmatch(r"-{3,}", line):
            item = ITEM.fullmatch(line)
            if item:
                out += [item.group(1), "    " + item.group(2)]
                continue
            if k and not lines[k - 1].strip():
                out += ["Notes", "-----"]
                in_items = False
        out.append(line)
    return "\n".join(out)


def _relative(obj: griffe.Object, name: str) -> str:
    """``.x`` / ``..x`` as an import in ``obj``'s module would read it."""
    base = obj.module if obj.module.is_init_module else obj.module.parent
    dots = len(name) - len(name.lstrip("."))
    for _ in range(dots - 1):
        base = base.parent
    return f"{base.path}.{name.lstrip('.')}"


def _resolve(obj: griffe.Object, name: str, root: str) -> str | None:
    """The full path ``name`` stands for in ``obj``'s docstring (a dotted name whose head is an importable module
    outside the package as written), or ``None`` when it is not in scope."""
    if name.startswith("."):
        return _relative(obj, name)
    head, _, rest = name.partition(".")
    if head == root:
        return name
    try:
        path = obj.resolve(head)
    except griffe.NameResolutionError:
        return head if rest and importlib.util.find_spec(head) else None
    return f"{path}.{rest}" if rest else path


def _exists(pkg: griffe.Module, path: str) -> bool:
    if path == pkg.path:
        return True
    try:
        pkg[path[len(pkg.path) + 1:]]
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return False
    return True


class SphinxRoles(griffe.Extension):
    """Rewrites the roles of every docstring of the package once it is loaded (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        self._walk(pkg, pkg, set())

    def _walk(self, pkg: griffe.Module, obj: griffe.Object, seen: set) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            text = ROLE.sub(lambda m: self._link(pkg, obj, m), obj.docstring.value)
            obj.docstring.value = _numpy_items(text)
        for member in obj.members.values():
            if not member.is_alias:
                self._walk(pkg, member, seen)

    @staticmethod
    def _link(pkg: griffe.Module, obj: griffe.Object, match: re.Match) -> str:
        short, name = match.groups()
        shown = name.lstrip(".").rsplit(".", 1)[-1] if short else name
        path = _resolve(obj, name, pkg.path)
        if path is not None and path != pkg.path and not path.startswith(pkg.path + "."):
            return f"`{shown}`"
        if path is None or not _exists(pkg, path):
            griffe.logger.warning(f"{obj.relative_filepath}:{obj.docstring.lineno}: {match.group(0)} in the docstring of "
                                  f"{obj.path} names nothing in {pkg.path} (renamed or moved?)")
            return f"`{shown}`"
        return f'<autoref identifier="{path}" optional><code>{shown}</code></autoref>'
