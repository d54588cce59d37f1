"""Options as data: `Settings`, the base of every room's settings class, and `option()`,
which declares one field with its default, its help text and how it appears on the
command line.

A field is written once, here in its room's class; `palestra.cli.options` turns classes
into command-line options, `--config FILE` reads the same keys from TOML, YAML or JSON, and
`docs/cli.md` is generated from the same classes. This module knows nothing of the CLI: it
only records, per field, the flag's spelling and whether a value is a comma list.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

# How a server's processes (API, worker, engine process) write their log lines.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class Settings(BaseModel):
    """Typed, immutable settings of one room. Unknown keys are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    def serving(self) -> Self:
        """These settings as a server (`palestra worker`) uses them: a backend's options
        resolve here what `auto` means for a server, where it differs."""
        return self


def option(
    default: Any = ...,
    help: str = "",
    *,
    flag: str | None = None,
    positional: bool = False,
    comma: bool = False,
    secondary: str | None = None,
    hidden: bool = False,
    minimum: int | None = None,
) -> Any:
    """A settings field. `flag` overrides the `--field-name` spelling; `positional` makes it
    an argument; `comma` lets one flag carry a comma list (`--api-keys a,b`); `secondary` is
    the off switch of a boolean that defaults to on (`--no-clean`); `minimum` is the least
    number it takes (a smaller one is refused as the settings are read)."""
    extra: dict[str, Any] = {}
    if flag:
        extra["flag"] = flag
    if positional:
        extra["positional"] = True
    if comma:
        extra["comma"] = True
    if secondary:
        extra["secondary"] = secondary
    if hidden:
        extra["hidden"] = True
    return Field(default, description=help, json_schema_extra=extra or None, ge=minimum)


def field_extra(model: type[BaseModel], name: str) -> dict[str, Any]:
    extra = model.model_fields[name].json_schema_extra
    return dict(extra) if isinstance(extra, dict) else {}


def flag_of(model: type[BaseModel], name: str) -> str:
    """The command-line spelling of a field: `--max-batch-size` for `max_batch_size`."""
    return str(field_extra(model, name).get("flag") or "--" + name.replace("_", "-"))
