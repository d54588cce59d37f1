"""The CLI reference (`docs/cli.md`), generated from the command tree, so from the same
settings classes and Typer signatures the commands are built from. A test fails when the
file drifts; `make docs` (or `python -m palestra.cli.reference docs/cli.md`) rewrites it.
"""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path
from typing import Any

HEADER = """# Palestra command-line reference

Generated from the commands themselves by `make docs`; do not edit by hand. Every
command also reads its options from `--config FILE` (TOML, YAML or JSON; keys are the
option names below without the leading dashes, `-` or `_` alike); options given on the
command line win over the file, and the file over the defaults.
"""


def _default(param: Any) -> str:
    default = param.default
    if param.required or default is None or default == [] or default == ():
        return ""
    if callable(default):
        return ""
    if isinstance(default, list | tuple):
        return ", ".join(str(v) for v in default)
    if isinstance(default, bool):
        return "on" if default else ""
    return str(getattr(default, "value", default))


def _names(param: Any) -> str:
    names = [*param.opts, *getattr(param, "secondary_opts", [])]
    if param.param_type_name == "argument":
        return param.name.upper()
    return " / ".join(f"`{n}`" for n in names)


def _type(param: Any) -> str:
    descriptor = getattr(param, "type_descriptor", None)
    return _annotation_text(getattr(descriptor, "annotation", str))


def _annotation_text(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _annotation_text(args[0])
    if origin is typing.Literal:
        return " \\| ".join(str(a) for a in args)
    if origin in (list, tuple):
        return f"{_annotation_text(args[0]) if args else 'text'} (repeatable)"
    names = {bool: "flag", int: "integer", float: "number", str: "text", Path: "path"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _command_section(path: str, command: Any) -> list[str]:
    help_text = (command.help or "").strip().split("\n\n")[0].replace("\n", " ")
    lines = [f"## `{path}`", "", help_text, ""]
    params = [p for p in command.params if not getattr(p, "hidden", False) and p.name != "help"]
    if params:
        lines += ["| option | type | default | meaning |", "|---|---|---|---|"]
        for param in params:
            meaning = (getattr(param, "help", None) or "").replace("\n", " ").replace("|", "\\|")
            lines.append(f"| {_names(param)} | {_type(param)} | {_default(param)} | {meaning} |")
        lines.append("")
    return lines


def _walk(path: str, command: Any) -> list[str]:
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        return _command_section(path, command)
    lines: list[str] = []
    for name in sorted(subcommands):
        lines += _walk(f"{path} {name}", subcommands[name])
    return lines


def render() -> str:
    import typer

    from palestra.cli.main import app

    return HEADER + "\n" + "\n".join(_walk("palestra", typer.main.get_command(app))).rstrip() + "\n"


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/cli.md")
    target.write_text(render(), "utf-8")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
