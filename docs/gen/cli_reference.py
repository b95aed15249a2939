"""Build-time page ``reference/cli.md``: the help of the ``dlnlab`` Typer app and of each of its commands, as
``dlnlab [COMMAND] --help`` prints it (invoked in process with Typer's test runner; the commands are those of the
click group Typer builds, ``typer.main.get_command(app)``). A command that fails to print its help fails the
build."""

from __future__ import annotations

import mkdocs_gen_files
import typer
from typer.testing import CliRunner

from dlnlab.cli import app

WIDTH = 110


def help_text(args: list[str]) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], prog_name="dlnlab", terminal_width=WIDTH)
    if result.exit_code != 0:
        raise RuntimeError(f"dlnlab {' '.join(args)} --help exited with {result.exit_code}:\n{result.output}")
    return "\n".join(line.rstrip() for line in result.output.strip("\n").splitlines())


def page() -> str:
    group = typer.main.get_command(app)
    lines = ["# CLI reference", "",
             ("Generated at build time from the Typer app (`dlnlab.cli.app`): what `dlnlab [COMMAND] --help` "
              "prints. Bad input exits with code 2 and a message naming the field, the value and what is "
              "allowed."), "",
             "| command | what it does |", "|---|---|"]
    commands = {name: cmd for name, cmd in group.commands.items() if not cmd.hidden}
    for name, cmd in commands.items():
        first = (cmd.help or "").strip().split("\n\n")[0]
        lines.append(f"| [`dlnlab {name}`](#dlnlab-{name}) | {' '.join(first.split()).replace('|', '/')} |")
    lines += ["", "## `dlnlab`", "", "```text", help_text([]), "```", ""]
    for name in commands:
        lines += [f"## `dlnlab {name}` {{ #dlnlab-{name} }}", "", "```text", help_text([name]), "```", ""]
    return "\n".join(lines)


with mkdocs_gen_files.open("reference/cli.md", "w") as fh:
    fh.write(page())
