"""Options as data: commands generated from settings classes take each field once, from
the command line or from `--config FILE` (TOML, YAML, JSON; the line wins); backend
options reach only their backend; `serve` offers every worker, API and web UI option;
the CLI reference and the README's command lines match the real commands."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from palestra.backends.options import HFOptions, LlamaCppOptions
from palestra.cli.options import Parsed, Section, settings_command
from palestra.core.errors import InvalidRequestError
from palestra.core.settings import Settings, option

ROOT = Path(__file__).resolve().parents[3]


class Sample(Settings):
    size: int = option(16, "How many.")
    names: list[str] = option([], "Names.", comma=True)
    mode: str = option("fast", "How.", flag="--how")
    enabled: bool = option(True, "Switch.", secondary="--off")


def _app(*sections: Section) -> tuple[typer.Typer, list[Parsed]]:
    seen: list[Parsed] = []
    app = typer.Typer()
    app.command("run")(settings_command(sections, seen.append))
    app.command("other")(lambda: None)  # two commands, so "run" is a subcommand
    return app, seen


def test_defaults_then_config_file_then_command_line(tmp_path: Path) -> None:
    app, seen = _app(Section("sample", Sample))
    runner = CliRunner()
    assert runner.invoke(app, ["run"]).exit_code == 0
    assert seen[-1]["sample"] == Sample()
    toml = tmp_path / "c.toml"
    toml.write_text('size = 4\nnames = ["a", "b"]\nhow = "slow"\n')
    result = runner.invoke(app, ["run", "--config", str(toml)])
    assert result.exit_code == 0, result.output
    assert seen[-1]["sample"] == Sample(size=4, names=["a", "b"], mode="slow")
    yaml = tmp_path / "c.yaml"
    yaml.write_text("size: 5\nenabled: false\n")
    runner.invoke(app, ["run", "--config", str(yaml), "--size", "6", "--names", "x,y"])
    assert seen[-1]["sample"] == Sample(size=6, names=["x", "y"], enabled=False)
    json_file = tmp_path / "c.json"
    json_file.write_text('{"size": 7}')
    runner.invoke(app, ["run", "--config", str(json_file), "--off"])
    assert seen[-1]["sample"] == Sample(size=7, enabled=False)


def test_a_config_key_no_option_has_is_an_error_naming_the_options(tmp_path: Path) -> None:
    app, _ = _app(Section("sample", Sample))
    bad = tmp_path / "bad.toml"
    bad.write_text("sise = 4\n")
    result = CliRunner().invoke(app, ["run", "--config", str(bad)])
    assert result.exit_code == 2
    assert "sise" in result.output and "size" in result.output


def test_backend_options_reach_only_their_backend() -> None:
    sections = [
        Section("backend:hf", HFOptions, optional=True, label="hf"),
        Section("backend:llamacpp", LlamaCppOptions, optional=True, label="llamacpp"),
    ]
    app, seen = _app(*sections)
    runner = CliRunner()
    runner.invoke(app, ["run", "--max-batch-size", "3", "--dtype", "float16"])
    hf = seen[-1].optional_settings("backend:hf", sections)
    assert hf == HFOptions(max_batch_size=3, dtype="float16")
    assert hf.model_fields_set == {"max_batch_size", "dtype"}  # only what was given
    with pytest.raises(InvalidRequestError) as caught:
        seen[-1].optional_settings("backend:llamacpp", sections)
    assert "--dtype, --max-batch-size are options of the hf backend" in str(caught.value)
    assert "llamacpp takes: --parallel, --threads, --context-length, --gpu-layers" in str(
        caught.value
    )


@pytest.mark.parametrize(
    ("args", "flag", "least"),
    [(["--parallel", "0"], "--parallel", 1), (["--threads", "-1"], "--threads", 0)],
)
def test_a_number_below_its_minimum_is_refused_naming_the_flag(
    args: list[str], flag: str, least: int
) -> None:
    sections = [Section("backend:llamacpp", LlamaCppOptions, optional=True, label="llamacpp")]
    app, seen = _app(*sections)
    CliRunner().invoke(app, ["run", *args])
    with pytest.raises(InvalidRequestError) as caught:
        seen[-1].optional_settings("backend:llamacpp", sections)
    assert str(caught.value) == f"{flag}: Input should be greater than or equal to {least}"
    assert LlamaCppOptions(parallel=1, threads=0).parallel == 1  # the minimum itself is taken


def test_a_bad_value_names_the_flag() -> None:
    app, _ = _app(Section("sample", Sample))
    result = CliRunner().invoke(app, ["run", "--size", "many"])
    assert result.exit_code == 2 and "--size" in result.output


def _flags(command: Any) -> set[str]:
    return {
        name
        for param in command.params
        for name in [*param.opts, *getattr(param, "secondary_opts", [])]
    }


def _commands() -> Any:
    from palestra.cli.main import app

    return typer.main.get_command(app)


def test_serve_offers_every_worker_api_and_webui_option() -> None:
    root = _commands().commands
    serve = _flags(root["serve"])
    wired = {  # what serve sets itself, or names after the server it belongs to
        "--host", "--port", "--worker-address", "--controller-address", "--no-register",
        "--api-base", "--api-key", "--log-level",
        "--ssl-certfile", "--ssl-keyfile", "--ssl-ca-certs",  # TLS: between machines only
    }  # fmt: skip
    for name in ("worker", "api", "webui", "controller"):
        missing = _flags(root[name]) - serve - wired
        assert not missing, f"serve lacks {name}'s {sorted(missing)}"
    assert {
        "--controller-port",
        "--worker-port",
        "--webui-port",
        "--register-api-endpoint-file",
    } <= serve


def test_every_command_takes_a_config_file() -> None:
    def walk(command: Any, path: str) -> list[str]:
        if hasattr(command, "commands"):
            return [
                p for name, sub in command.commands.items() for p in walk(sub, f"{path} {name}")
            ]
        return [] if "--config" in _flags(command) else [path]

    assert walk(_commands(), "palestra") == []


def test_the_cli_reference_is_generated_from_the_commands() -> None:
    from palestra.cli.reference import render

    current = (ROOT / "docs" / "cli.md").read_text()
    assert current == render(), "docs/cli.md is stale: run `make docs`"


def _readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    lines = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("palestra "):
                lines.append(line)
    return lines


def test_every_readme_command_line_uses_real_commands_and_options() -> None:
    root = _commands()
    lines = _readme_commands()
    assert len(lines) >= 10
    for line in lines:
        words = line.split()[1:]
        command = root
        while hasattr(command, "commands") and words and words[0] in command.commands:
            command = command.commands[words.pop(0)]
        assert not hasattr(command, "commands"), f"not a command: {line}"
        for flag in re.findall(r"(?<!\S)(--[a-z0-9-]+)", " ".join(words)):
            assert flag in _flags(command), f"{flag} is not an option of: {line}"


def test_hand_written_commands_read_a_config_file_too(tmp_path: Path) -> None:
    from palestra.cli.options import add_config_option

    seen: list[tuple[str, int]] = []
    app = typer.Typer()

    @app.command("greet")
    def greet(
        name: str = typer.Option("world", "--name"), times: int = typer.Option(1, "--times")
    ) -> None:
        seen.append((name, times))

    app.command("other")(lambda: None)
    add_config_option(app)
    config = tmp_path / "greet.yaml"
    config.write_text("name: Ada\ntimes: 3\n")
    runner = CliRunner()
    assert runner.invoke(app, ["greet", "--config", str(config)]).exit_code == 0
    assert runner.invoke(app, ["greet", "--config", str(config), "--times", "5"]).exit_code == 0
    assert seen == [("Ada", 3), ("Ada", 5)]


def test_the_worker_paces_frames_by_tokens_and_milliseconds() -> None:
    from pydantic import ValidationError

    from palestra.core.types import Pacing
    from palestra.serve.worker.settings import WorkerSettings

    assert WorkerSettings().pacing == Pacing(1, 0.02)
    assert WorkerSettings(stream_interval=4, stream_interval_ms=0).pacing == Pacing(4, 0.0)
    assert WorkerSettings(stream_interval_ms=0).pacing.every_token
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        WorkerSettings(stream_interval_ms=-1)
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        WorkerSettings(stream_interval=0)
