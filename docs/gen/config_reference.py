"""Build-time page ``reference/config.md``: every config key from :data:`dlnlab.config.FIELDS`, the table the
validation uses (one source of truth), and the named cross-field rules :data:`dlnlab.config.RULES`."""

from __future__ import annotations

import dataclasses
import json

import mkdocs_gen_files

from dlnlab import config as C


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|").replace("<", "&lt;").replace("*", "\\*")


def toml_value(value) -> str:
    if value is None:
        return "*not given*"
    if isinstance(value, tuple):
        value = list(value)
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def section_models(name: str) -> tuple:
    return tuple(m for m, secs in C.MODEL_SECTIONS.items() if name in secs) or C.MODELS


def section_lines(name: str, cls) -> list[str]:
    shared = name in C.SHARED_SECTIONS
    users = ("every simulator (a key a simulator does not use must be omitted)" if shared
             else "the " + ", ".join(f"`{m}`" for m in section_models(name)) + " simulator")
    doc = (cls.__doc__ or "").strip()
    lines = [f"## `[{name}]`", ""]
    if doc and not doc.startswith(cls.__name__ + "("):  # dataclasses without a docstring get their signature
        lines += [" ".join(doc.split()), ""]
    lines += [f"Used by: {users}.", ""]
    head = "| key | type | default | allowed | meaning |" + (" simulators |" if shared else "")
    lines += [head, "|---|---|---|---|---|" + ("---|" if shared else "")]
    for f in dataclasses.fields(cls):
        field = C.FIELDS[f"{name}.{f.name}"]
        row = (f"| `{f.name}` | `{f.type}` | {toml_value(field.default)} | {cell(field.allowed)} | "
               f"{cell(field.doc)} |")
        if shared:
            row += " " + ("all" if field.models == C.MODELS else ", ".join(field.models)) + " |"
        lines.append(row)
    return lines + [""]


def rule_lines() -> list[str]:
    lines = ["## Cross-field rules", "",
             ("Checked in this order after every key is valid (`dlnlab.config.RULES`); a violation raises "
              "`ConfigError` naming the fields."), "",
             "| rule | simulators | what it checks |", "|---|---|---|"]
    for r in C.RULES:
        users = "all" if tuple(r.models) == C.MODELS else ", ".join(r.models)
        lines.append(f"| `{r.name}` | {users} | {cell(r.doc) or '—'} |")
    return lines + [""]


def page() -> str:
    lines = [
        "# Config reference", "",
        ("Generated at build time from [`dlnlab.config.FIELDS`][dlnlab.config.FIELDS], the declarative table "
         "that `Config.from_dict` validates against: what is listed here is what is checked. A config is TOML (or "
         "a dict) with the sections of exactly one simulator beside the shared `[dynamics]`, `[record]` and "
         "`[ensemble]`; `--set section.key=value` on the command line and `load_config(path, overrides)` change "
         "one key."), "",
        ("**Stacking.** The keys marked *a list stacks replicas* may be given as lists: the product of all lists "
         "is run as one compiled ensemble, each combination with `ensemble.replicas` seeds, in this order (the "
         "first varies slowest): " + ", ".join(f"`{k}`" for k in C.STACKABLE) + "."), "",
    ]
    for name, cls in C.SECTIONS.items():
        lines += section_lines(name, cls)
    return "\n".join(lines + rule_lines())


with mkdocs_gen_files.open("reference/config.md", "w") as fh:
    fh.write(page())
