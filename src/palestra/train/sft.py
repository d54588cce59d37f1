"""`palestra train sft`: supervised fine-tuning on conversations with transformers'
Trainer, full or LoRA / QLoRA through peft, with resume, progress bar, loss logging,
evaluation on a held-out split and optional wandb / tensorboard (multi-GPU: launch with
`accelerate launch`, configs in `configs/accelerate/`).

The saved folder is servable as is: weights (or the adapter), the tokenizer with the chat
template used for training, and a generation config whose eos ids include the template's
stop tokens.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import field_validator

from palestra.core.errors import InvalidRequestError
from palestra.core.settings import option
from palestra.train.examples import ExampleReport, build_examples
from palestra.train.run import (
    TrainingRun,
    load_for_training,
    model_and_template,
    save_servable,
)


class SFTConfig(TrainingRun):
    """A supervised fine-tuning run: data, model, schedule, LoRA, logging."""

    data: str = option(..., "ShareGPT or OpenAI-messages file (JSON or JSONL).", positional=True)
    val_fraction: float = option(0.0, "Share of conversations held out for validation.")
    packing: bool = option(False, "Pack short examples into one row.")
    adam_beta2: float = option(0.999, "AdamW beta2.")
    min_lr_ratio: float = option(0.0, "Cosine decay floor, as a share of the peak rate.")

    @field_validator("val_fraction")
    @classmethod
    def _a_share(cls, value: float) -> float:
        if not 0 <= value < 1:
            raise ValueError(f"must be in [0, 1), got {value}")
        return value


@dataclass
class SFTResult:
    out: Path
    train_report: ExampleReport
    val_report: ExampleReport | None
    losses: list[float]  # training loss at each logging step
    eval_loss: float | None
    steps: int


def run_sft(config: SFTConfig) -> SFTResult:
    from palestra.train.data import load_conversations, split_validation

    # bad data and settings fail before transformers' Trainer is imported
    train_convs, val_convs = split_validation(
        load_conversations(config.data), config.val_fraction, config.seed
    )
    path, tokenizer, template = model_and_template(config, "SFT")
    train_examples, train_report = build_examples(
        train_convs, template, tokenizer, config.max_length
    )
    val_examples, val_report = (
        build_examples(val_convs, template, tokenizer, config.max_length)
        if val_convs
        else ([], None)
    )
    if not train_examples:
        raise InvalidRequestError(
            f"no trainable examples in {config.data}: {train_report.summary()}"
        )
    print(f"train: {train_report.summary()}", flush=True)
    if val_report:
        print(f"validation: {val_report.summary()}", flush=True)

    from transformers import Trainer, TrainingArguments

    from palestra.train.packing import PackedCollator, PaddedCollator, pack

    model = load_for_training(path, config)
    train_data: list[Any] = list(train_examples)
    val_data: list[Any] = list(val_examples)
    collator: Any = PaddedCollator(tokenizer.pad_token_id)
    if config.packing:
        train_data = pack(train_examples, config.max_length)
        val_data = pack(val_examples, config.max_length) if val_examples else []
        collator = PackedCollator(tokenizer.pad_token_id)
        print(f"packed {len(train_examples)} examples into {len(train_data)} rows", flush=True)

    args = TrainingArguments(
        **config.trainer_arguments(eval_split=bool(val_data)),
        adam_beta2=config.adam_beta2,
        lr_scheduler_type="cosine_with_min_lr" if config.min_lr_ratio else "cosine",
        lr_scheduler_kwargs={"min_lr_rate": config.min_lr_ratio} if config.min_lr_ratio else {},
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_data,
        eval_dataset=val_data or None,
        data_collator=collator,
    )
    trainer.train(resume_from_checkpoint=config.resume_from())
    eval_loss = trainer.evaluate()["eval_loss"] if val_data else None
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    save_servable(trainer.model, tokenizer, template, Path(config.out))
    summary = {
        "config": config.model_dump(),
        "train": asdict(train_report),
        "validation": asdict(val_report) if val_report else None,
        "losses": losses,
        "eval_loss": eval_loss,
        "steps": trainer.state.global_step,
    }
    (Path(config.out) / "palestra_training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return SFTResult(
        Path(config.out), train_report, val_report, losses, eval_loss, trainer.state.global_step
    )
