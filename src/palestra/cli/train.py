"""`palestra train sft` and `palestra train merge-lora`."""

from __future__ import annotations

import typer

app = typer.Typer(help="Fine-tune models on conversations.", no_args_is_help=True)


@app.command("sft")
def sft(
    data: str = typer.Argument(..., help="ShareGPT or OpenAI-messages file (JSON or JSONL)."),
    out: str = typer.Option(..., "--out", help="Folder for checkpoints and the final model."),
    model_path: str = typer.Option(None, "--model-path", help="Default: bundled model."),
    template: str = typer.Option(None, "--template", help="Default: the tokenizer's."),
    max_length: int = typer.Option(512, "--max-length"),
    val_fraction: float = typer.Option(0.0, "--val-fraction"),
    packing: bool = typer.Option(False, "--packing", help="Pack short examples per row."),
    epochs: float = typer.Option(1.0, "--epochs"),
    max_steps: int = typer.Option(-1, "--max-steps", help="Overrides --epochs when > 0."),
    learning_rate: float = typer.Option(2e-5, "--lr"),
    batch_size: int = typer.Option(8, "--batch-size"),
    grad_accum: int = typer.Option(1, "--grad-accum"),
    lora: bool = typer.Option(False, "--lora", help="Train a LoRA adapter (peft)."),
    qlora: bool = typer.Option(False, "--qlora", help="LoRA on a 4-bit base (CUDA)."),
    lora_r: int = typer.Option(8, "--lora-r"),
    lora_alpha: int = typer.Option(16, "--lora-alpha"),
    lora_dropout: float = typer.Option(0.05, "--lora-dropout"),
    lora_target_modules: str = typer.Option("q_proj,v_proj", "--lora-target-modules"),
    logging_steps: int = typer.Option(10, "--logging-steps"),
    save_steps: int = typer.Option(500, "--save-steps"),
    report_to: str = typer.Option("none", "--report-to", help="none, tensorboard or wandb"),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint."),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto or cpu"),
) -> None:
    """Supervised fine-tuning with the loss on assistant replies only."""
    from palestra.train.sft import SFTConfig, run_sft

    result = run_sft(
        SFTConfig(
            data=data,
            out=out,
            model_path=model_path,
            template=template,
            max_length=max_length,
            val_fraction=val_fraction,
            packing=packing,
            epochs=epochs,
            max_steps=max_steps,
            learning_rate=learning_rate,
            batch_size=batch_size,
            grad_accum=grad_accum,
            lora=lora,
            qlora=qlora,
            lora_r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            lora_target_modules=[m.strip() for m in lora_target_modules.split(",") if m],
            logging_steps=logging_steps,
            save_steps=save_steps,
            report_to=report_to,
            resume=resume,
            seed=seed,
            device=device,
        )
    )
    losses = ", ".join(f"{loss:.3f}" for loss in result.losses[:3] + result.losses[-3:])
    print(f"trained {result.steps} steps; loss {losses}")
    if result.eval_loss is not None:
        print(f"validation loss {result.eval_loss:.4f}")
    print(f"saved to {result.out}; chat with: palestra chat --model-path {result.out}")


@app.command("merge-lora")
def merge_lora(
    adapter: str = typer.Argument(..., help="A LoRA adapter folder (from train sft --lora)."),
    out: str = typer.Option(..., "--out", help="Folder for the merged full model."),
    base: str = typer.Option(None, "--base", help="Default: the base the adapter names."),
) -> None:
    """Fold a LoRA adapter into its base model's weights."""
    from palestra.train.merge import merge_lora as merge

    print(f"merged model written to {merge(adapter, out, base)}")


@app.command("make-delta")
def make_delta(
    base: str = typer.Option(..., "--base"),
    target: str = typer.Option(..., "--target"),
    out: str = typer.Option(..., "--out"),
) -> None:
    """Write target - base (release a fine-tune as a delta on its base)."""
    from palestra.train.deltas import make_delta as make

    print(f"delta written to {make(base, target, out)}")


@app.command("apply-delta")
def apply_delta(
    base: str = typer.Option(..., "--base"),
    delta: str = typer.Option(..., "--delta"),
    out: str = typer.Option(..., "--out"),
) -> None:
    """Rebuild a model as base + delta (as Vicuna's weights were released)."""
    from palestra.train.deltas import apply_delta as apply

    print(f"model written to {apply(base, delta, out)}")
