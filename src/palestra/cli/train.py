"""`palestra train sft` (generated from `train.sft.SFTConfig`), `dpo`, `kto` and `orpo`
(from `train.preference.PreferenceConfig`), `merge-lora`, `make-delta` and `apply-delta`."""

from __future__ import annotations

from collections.abc import Callable

import typer

from palestra.cli.options import Parsed, Section, settings_command
from palestra.train.preference import METHODS, PreferenceConfig
from palestra.train.sft import SFTConfig

app = typer.Typer(help="Fine-tune models on conversations.", no_args_is_help=True)


def _sft(parsed: Parsed) -> None:
    from palestra.train.sft import run_sft

    result = run_sft(parsed["sft"])
    losses = ", ".join(f"{loss:.3f}" for loss in result.losses[:3] + result.losses[-3:])
    print(f"trained {result.steps} steps; loss {losses}")
    if result.eval_loss is not None:
        print(f"validation loss {result.eval_loss:.4f}")
    print(f"saved to {result.out}; chat with: palestra chat --model-path {result.out}")


app.command("sft", help="Supervised fine-tuning with the loss on assistant replies only.")(
    settings_command([Section("sft", SFTConfig)], _sft)
)


def _preference(method: str) -> Callable[[Parsed], None]:
    def train(parsed: Parsed) -> None:
        from palestra.train.preference import run_preference

        result = run_preference(method, parsed[method])
        losses = ", ".join(f"{loss:.3f}" for loss in result.losses[:3] + result.losses[-3:])
        print(f"trained {result.steps} steps on {result.records} records; loss {losses}")
        if result.rewards:
            print(", ".join(f"{k} {v:.3f}" for k, v in sorted(result.rewards.items())))
        if method == "reward":
            print(
                f"saved to {result.out}; judge pairs with: palestra judge grade "
                f"--mode pairwise-all --judge-reward-model {result.out}"
            )
        else:
            print(f"saved to {result.out}; serve with: palestra serve --model-path {result.out}")

    return train


for _method, _about in METHODS.items():
    app.command(_method, help=f"{_about}, on TRL.")(
        settings_command([Section(_method, PreferenceConfig)], _preference(_method))
    )


@app.command("merge-lora")
def merge_lora(
    adapter: str = typer.Argument(..., help="A LoRA adapter folder (from train sft --lora)."),
    out: str = typer.Option(..., "--out", help="Folder for the merged full model."),
    base: str = typer.Option(None, "--base", help="Default: the base the adapter names."),
) -> None:
    """Fold a LoRA adapter into its base model's weights."""
    from palestra.train.merge import merge_lora as merge

    print(f"merged model written to {merge(adapter, out, base)}")


MEMORY_HELP = (
    "Shard by shard over safetensors (default when both models have them), or both "
    "models whole in memory (needed for .bin checkpoints)."
)


@app.command("make-delta")
def make_delta(
    base: str = typer.Option(..., "--base"),
    target: str = typer.Option(..., "--target"),
    out: str = typer.Option(..., "--out"),
    low_memory: bool | None = typer.Option(None, "--low-memory/--in-memory", help=MEMORY_HELP),
) -> None:
    """Write target - base (release a fine-tune as a delta on its base)."""
    from palestra.train.deltas import make_delta as make

    print(f"delta written to {make(base, target, out, low_memory=low_memory)}")


@app.command("apply-delta")
def apply_delta(
    base: str = typer.Option(..., "--base"),
    delta: str = typer.Option(..., "--delta"),
    out: str = typer.Option(..., "--out"),
    low_memory: bool | None = typer.Option(None, "--low-memory/--in-memory", help=MEMORY_HELP),
) -> None:
    """Rebuild a model as base + delta (as Vicuna's weights were released)."""
    from palestra.train.deltas import apply_delta as apply

    print(f"model written to {apply(base, delta, out, low_memory=low_memory)}")
