"""Commands generated from settings classes, and `--config FILE` for every command.

`settings_command` turns one or more `Settings` classes (sections) into a Typer command:
one option per field, spelled, typed and documented by the field. A field shared by two
sections with the same flag (`host` in `serve`) is one option that sets both. Backend
option classes are sections too, with no default on the command line: only what the user
gives reaches the chosen backend, and an option the chosen backend lacks is an error that
names the options it has.

`with_config` gives a command function an eager `--config FILE` (TOML, YAML or JSON)
whose keys are the command's option names; the file fills the context's `default_map`, so
the command line still wins over the file and the file over defaults. `add_config_option`
applies it to every command of a Typer app.
"""

from __future__ import annotations

import functools
import inspect
import json
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from palestra.core.errors import InvalidRequestError
from palestra.core.settings import Settings, field_extra, flag_of

GIVEN = ("COMMANDLINE", "ENVIRONMENT", "DEFAULT_MAP")  # parameter sources the user chose


@dataclass(frozen=True)
class Section:
    """One settings class inside a command. `exclude` leaves fields out (the command sets
    them itself), `defaults` changes a default for this command only (a worker listens on
    21002); `optional` sections (backend options) pass on only what the user gave."""

    name: str
    model: type[Settings]
    exclude: frozenset[str] = frozenset()
    defaults: dict[str, Any] = field(default_factory=dict)
    optional: bool = False
    label: str = ""

    def fields(self) -> list[str]:
        return [name for name in self.model.model_fields if name not in self.exclude]

    def flag(self, name: str) -> str:
        return flag_of(self.model, name)


@dataclass
class Parsed:
    """What a generated command received: each section's settings (optional sections only
    through `optional_settings`), and which options the user gave."""

    sections: dict[str, Settings]
    given: dict[str, Any]  # option name -> value, for options given on the line or in --config
    owners: dict[str, list[tuple[Section, str]]]

    def __getitem__(self, name: str) -> Any:
        return self.sections[name]

    def optional_settings(self, section_name: str, candidates: Sequence[Section]) -> Settings:
        """The settings of one optional section (the chosen backend's options), from what the
        user gave; an option given for another optional section is an error naming this
        section's options."""
        chosen = next(s for s in candidates if s.name == section_name)
        values: dict[str, Any] = {}
        foreign: dict[str, set[str]] = {}  # flag -> the backends that have it
        for param, value in self.given.items():
            optional_owners = [(s, f) for s, f in self.owners[param] if s.optional]
            if not optional_owners:
                continue
            mine = [f for s, f in optional_owners if s.name == section_name]
            if mine:
                values[mine[0]] = value
            else:
                flag = optional_owners[0][0].flag(optional_owners[0][1])
                foreign[flag] = {s.label or s.name for s, _ in optional_owners}
        if foreign:
            flags = sorted(foreign)
            owners = sorted(set().union(*foreign.values()))
            name = chosen.label or chosen.name
            offered = ", ".join(chosen.flag(f) for f in chosen.fields()) or "none"
            verb = "is an option" if len(flags) == 1 else "are options"
            raise InvalidRequestError(
                f"{', '.join(flags)} {verb} of the {', '.join(owners)} backend, not of "
                f"{name!r}; {name} takes: {offered}"
            )
        return build_settings(chosen.model, values, chosen)


def build_settings(model: type[Settings], values: dict[str, Any], section: Section) -> Settings:
    try:
        return model(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error.get("loc") else ""
        where = section.flag(name) if name in model.model_fields else section.name
        raise InvalidRequestError(f"{where}: {error['msg']}") from None


# -------------------------------------------------------------------------- command
def _annotation(annotation: Any, optional: bool) -> Any:
    """The type Typer should parse a field as (tuples become lists; None allowed when
    the option may be absent)."""
    inner, nullable = _unwrap(annotation)
    if typing.get_origin(inner) in (list, tuple):
        args = typing.get_args(inner)
        return list[args[0] if args else str]  # type: ignore[misc]
    return inner | None if (nullable or optional) else inner


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the type inside Optional[...], whether None is allowed)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), True
    return annotation, False


def _default_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "none"
    return str(value)


@dataclass
class _Param:
    owners: list[tuple[Section, str]]  # the (section, field) pairs this option sets
    parameter: inspect.Parameter


def _parameters(sections: Sequence[Section]) -> dict[str, _Param]:
    """The command's parameters by name, each with the (section, field) pairs it sets."""
    params: dict[str, _Param] = {}
    labels: dict[str, list[str]] = {}
    for section in sections:
        for name in section.fields():
            info = section.model.model_fields[name]
            flag = section.flag(name)
            param_name = flag.lstrip("-").replace("-", "_")
            if param_name in params:
                params[param_name].owners.append((section, name))
                if section.optional and section.label:
                    labels[param_name].append(section.label)
                continue
            extra = field_extra(section.model, name)
            labels[param_name] = [section.label] if section.optional and section.label else []
            default = section.defaults.get(name, info.default)
            required = info.is_required() and name not in section.defaults
            help_text = info.description or ""
            if extra.get("comma"):
                help_text += " Comma list; repeatable."
            annotation = _annotation(info.annotation, section.optional)
            if extra.get("positional"):
                typer_default: Any = typer.Argument(
                    ... if required else default, help=help_text, show_default=not required
                )
            else:
                decls = [f"{flag}/{extra['secondary']}" if extra.get("secondary") else flag]
                shown = False
                if section.optional:
                    if default is not False and default not in (None, [], ()):
                        help_text += f" Default: {_default_text(default)}."
                    default = [] if typing.get_origin(annotation) is list else None
                elif info.annotation is not bool and default not in (None, [], ()):
                    shown = True
                if isinstance(default, tuple):
                    default = list(default)
                typer_default = typer.Option(
                    ... if required else default,
                    *decls,
                    help=help_text,
                    show_default=shown,
                    hidden=bool(extra.get("hidden")),
                )
            parameter = inspect.Parameter(
                param_name, inspect.Parameter.KEYWORD_ONLY, default=typer_default,
                annotation=annotation,
            )  # fmt: skip
            params[param_name] = _Param([(section, name)], parameter)
    for param_name, names in labels.items():
        if names:
            info = params[param_name].parameter.default
            info.help = f"{', '.join(names)} backend: {info.help}"
    return params


def settings_command(
    sections: Sequence[Section], run: Callable[[Parsed], None]
) -> Callable[..., None]:
    """A Typer command function whose options are the sections' fields; `run` gets
    them parsed. Register it with `app.command(name, help=...)`."""
    params = _parameters(sections)
    owners = {name: p.owners for name, p in params.items()}

    def command(ctx: typer.Context, config: Path | None = None, **values: Any) -> None:
        given = {
            name: _value(*owners[name][0], value)
            for name, value in values.items()
            if _source(ctx, name) in GIVEN and value not in (None, [])
        }
        built: dict[str, Settings] = {}
        for section in sections:
            if section.optional:
                continue
            section_values: dict[str, Any] = {}
            for name, pairs in owners.items():
                for owner, field_name in pairs:
                    if owner is section and values.get(name) is not None:
                        section_values[field_name] = _value(owner, field_name, values[name])
            built[section.name] = build_settings(section.model, section_values, section)
        run(Parsed(built, given, owners))

    context = inspect.Parameter(
        "ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context
    )
    config = inspect.Parameter(
        "config", inspect.Parameter.KEYWORD_ONLY, default=config_option(), annotation=Path | None
    )
    signature = inspect.Signature([context, config, *(p.parameter for p in params.values())])
    command.__signature__ = signature  # type: ignore[attr-defined]
    command.__annotations__ = {}  # Typer reads the signature's types
    return command


def _source(ctx: typer.Context, name: str) -> str:
    return str(getattr(ctx.get_parameter_source(name), "name", ""))


def _value(section: Section, name: str, value: Any) -> Any:
    if field_extra(section.model, name).get("comma") and isinstance(value, list | tuple):
        return _split_commas(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _split_commas(values: Iterable[Any]) -> list[str]:
    return [part.strip() for value in values for part in str(value).split(",") if part.strip()]


# --------------------------------------------------------------------------- config
def read_config(path: Path) -> dict[str, Any]:
    """A flat mapping of option names from a TOML, YAML or JSON file."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}") from None
    try:
        if path.suffix == ".toml":
            import tomllib

            data: Any = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
    except Exception as exc:
        kind = path.suffix[1:] or "JSON"
        raise typer.BadParameter(f"{path} is not valid {kind}: {exc}") from None
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path} must hold a mapping of option names to values")
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def _load_config(ctx: typer.Context, value: Path | None) -> None:
    if value is None:
        return
    data = read_config(Path(value))
    known = {p.name for p in ctx.command.params if p.name and p.expose_value}
    unknown = sorted(set(data) - known)
    if unknown:
        raise typer.BadParameter(
            f"{value}: unknown option(s) {', '.join(unknown)}; "
            f"`{ctx.command_path}` takes: {', '.join(sorted(known))}"
        )
    ctx.default_map = {**(ctx.default_map or {}), **data}


def config_option() -> Any:
    return typer.Option(
        None,
        "--config",
        is_eager=True,
        callback=_load_config,
        dir_okay=False,
        help="Read options from a TOML, YAML or JSON file (keys: the option names); "
        "options on the command line win.",
    )


def with_config(function: Callable[..., Any]) -> Callable[..., Any]:
    """The command function with a `--config FILE` option added (if it has none)."""
    signature = inspect.signature(function, eval_str=True)
    if "config" in signature.parameters or "_config" in signature.parameters:
        return function

    @functools.wraps(function)
    def wrapper(*args: Any, _config: Path | None = None, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    config = inspect.Parameter(
        "_config", inspect.Parameter.KEYWORD_ONLY, default=config_option(),
        annotation=Path | None,
    )  # fmt: skip
    parameters = list(signature.parameters.values())
    wrapper.__signature__ = signature.replace(parameters=[*parameters, config])  # type: ignore[attr-defined]
    return wrapper


def add_config_option(app: typer.Typer) -> None:
    """Give every command of the app (and its sub-apps) `--config FILE`."""
    for info in app.registered_commands:
        if info.callback is not None:
            info.callback = with_config(info.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            add_config_option(group.typer_instance)
