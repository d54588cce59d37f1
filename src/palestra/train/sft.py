"""`palestra train sft`: supervised fine-tuning on conversations with transformers'
Trainer, full or LoRA / QLoRA through peft, with resume, progress bar, loss logging,
evaluation on a held-out split and optional wandb / tensorboard (multi-GPU: launch with
`accelerate launch`, configs in `configs/accelerate/`).

The saved folder is servable as is: weights (or the adapter), the tokenizer with the chat
template used for training, and a generation config whose eos ids include the template's
stop tokens.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from palestra.backends.options import TRUST_REMOTE_CODE_HELP
from palestra.core.errors import InvalidRequestError, UnsupportedError
from palestra.core.settings import Settings, option
from palestra.train.examples import ExampleReport, build_examples


class SFTConfig(Settings):
    """A supervised fine-tuning run: data, model, schedule, LoRA, logging."""

    data: str = option(..., "ShareGPT or OpenAI-messages file (JSON or JSONL).", positional=True)
    out: str = option(..., "Folder for checkpoints and the final model.")
    model_path: str | None = option(
        None, "The model to tune (folder or Hub id org/name); default: the bundled model."
    )
    revision: str | None = option(
        None, "Hub branch, tag or commit for a Hub id (the model's code too); default: main."
    )
    trust_remote_code: bool = option(False, TRUST_REMOTE_CODE_HELP)
    template: str | None = option(
        None, "Chat template for rendering and masks; default: the tokenizer's, else the family's."
    )
    max_length: int = option(512, "Longest example, in tokens (longer ones are cut).")
    val_fraction: float = option(0.0, "Share of conversations held out for validation.")
    packing: bool = option(False, "Pack short examples into one row.")
    epochs: float = option(1.0, "Passes over the data.")
    max_steps: int = option(-1, "Optimiser steps; overrides --epochs when > 0.")
    learning_rate: float = option(2e-5, "Peak learning rate.", flag="--lr")
    batch_size: int = option(8, "Examples per device and step.")
    grad_accum: int = option(1, "Steps whose gradients are summed before an update.")
    warmup_ratio: float = option(0.03, "Share of the steps spent warming the rate up.")
    weight_decay: float = option(0.0, "AdamW weight decay.")
    adam_beta2: float = option(0.999, "AdamW beta2.")
    min_lr_ratio: float = option(0.0, "Cosine decay floor, as a share of the peak rate.")
    lora: bool = option(False, "Train a LoRA adapter (peft) instead of all weights.")
    qlora: bool = option(False, "LoRA on a 4-bit base (CUDA, bitsandbytes).")
    lora_r: int = option(8, "LoRA rank.")
    lora_alpha: int = option(16, "LoRA alpha.")
    lora_dropout: float = option(0.05, "LoRA dropout.")
    lora_target_modules: list[str] = option(
        ["q_proj", "v_proj"], "Modules LoRA adapts.", comma=True
    )
    logging_steps: int = option(10, "Log the loss every N steps.")
    save_steps: int = option(500, "Save a checkpoint every N steps.")
    report_to: Literal["none", "tensorboard", "wandb"] = option(
        "none", "Where to log: none, tensorboard or wandb."
    )
    resume: bool = option(False, "Continue from the last checkpoint in --out.")
    seed: int = option(0, "Random seed (data order, initialisation).")
    device: Literal["auto", "cpu"] = option("auto", "auto (accelerate decides) or cpu.")


@dataclass
class SFTResult:
    out: Path
    train_report: ExampleReport
    val_report: ExampleReport | None
    losses: list[float]  # training loss at each logging step
    eval_loss: float | None
    steps: int


def run_sft(config: SFTConfig) -> SFTResult:
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    from palestra.backends.hf.loading import quiet_transformers
    from palestra.models.inspect import check_remote_code, inspect_model, resolve_model_path
    from palestra.templates.resolve import resolve_template
    from palestra.train.data import load_conversations, split_validation
    from palestra.train.packing import PackedCollator, PaddedCollator, pack

    quiet_transformers()
    if config.report_to not in ("none", "tensorboard", "wandb"):
        raise InvalidRequestError("--report-to must be none, tensorboard or wandb")
    logger_package = {"tensorboard": "tensorboard", "wandb": "wandb"}.get(config.report_to)
    if logger_package and importlib.util.find_spec(logger_package) is None:
        raise UnsupportedError(
            f"--report-to {config.report_to} needs: pip install {logger_package}"
        )
    path = resolve_model_path(config.model_path, config.revision)
    info = inspect_model(path)
    if info.kind != "chat":
        raise UnsupportedError(f"{path} is a {info.kind} model; SFT trains causal chat models")
    remote_code = check_remote_code([path], config.trust_remote_code, "--trust-remote-code")
    tokenizer = AutoTokenizer.from_pretrained(path, **remote_code)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    family = info.family
    template = resolve_template(config.template, tokenizer, family.template if family else None)

    train_convs, val_convs = split_validation(
        load_conversations(config.data), config.val_fraction, config.seed
    )
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

    model = _load_model(AutoModelForCausalLM, path, config)
    train_data: list[Any] = list(train_examples)
    val_data: list[Any] = list(val_examples)
    collator: Any = PaddedCollator(tokenizer.pad_token_id)
    batch_size = config.batch_size
    if config.packing:
        train_data = pack(train_examples, config.max_length)
        val_data = pack(val_examples, config.max_length) if val_examples else []
        collator = PackedCollator(tokenizer.pad_token_id)
        print(f"packed {len(train_examples)} examples into {len(train_data)} rows", flush=True)

    args = TrainingArguments(
        output_dir=config.out,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        gradient_accumulation_steps=config.grad_accum,
        warmup_steps=config.warmup_ratio,  # a float in [0, 1) is a share of all steps
        weight_decay=config.weight_decay,
        adam_beta2=config.adam_beta2,
        lr_scheduler_type="cosine_with_min_lr" if config.min_lr_ratio else "cosine",
        lr_scheduler_kwargs={"min_lr_rate": config.min_lr_ratio} if config.min_lr_ratio else {},
        logging_steps=config.logging_steps,
        save_steps=config.save_steps,
        save_total_limit=2,
        eval_strategy="epoch" if val_data else "no",
        report_to=[] if config.report_to == "none" else [config.report_to],
        remove_unused_columns=False,
        seed=config.seed,
        use_cpu=config.device == "cpu",
        disable_tqdm=False,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_data,
        eval_dataset=val_data or None,
        data_collator=collator,
    )
    resume = config.resume and any(Path(config.out).glob("checkpoint-*"))
    trainer.train(resume_from_checkpoint=True if resume else None)
    eval_loss = trainer.evaluate()["eval_loss"] if val_data else None
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    _save(trainer.model, tokenizer, template, Path(config.out), config)
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


def _load_model(auto: Any, path: str, config: SFTConfig) -> Any:
    import torch

    options: dict[str, Any] = {"dtype": torch.float32}
    if config.qlora:
        if not torch.cuda.is_available():
            raise UnsupportedError("QLoRA quantises to 4 bits with bitsandbytes, which needs CUDA")
        from transformers import BitsAndBytesConfig

        options = {
            "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=torch.bfloat16,
            ),
            "device_map": {"": 0},
        }
    options["trust_remote_code"] = config.trust_remote_code  # checked above with the tokenizer
    model = auto.from_pretrained(path, **options)
    model.config.use_cache = False  # training: no KV cache (and packed masks need none)
    if not (config.lora or config.qlora):
        return model
    try:
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    except ImportError as exc:
        raise UnsupportedError("LoRA needs peft: pip install 'palestra[peft]'") from exc
    if config.qlora:
        model = prepare_model_for_kbit_training(model)
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules,
        task_type="CAUSAL_LM",
    )
    try:
        model = get_peft_model(model, lora)
    except ValueError as exc:  # target modules that the model does not have
        raise InvalidRequestError(f"--lora-target-modules: {exc}") from exc
    return model


def _save(model: Any, tokenizer: Any, template: Any, out: Path, config: SFTConfig) -> None:
    """Weights (or adapter), tokenizer with the training chat template, generation config."""
    from transformers import GenerationConfig

    out.mkdir(parents=True, exist_ok=True)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.config.use_cache = True
    tokenizer.chat_template = template.jinja  # the template the model learned
    eos = {tokenizer.eos_token_id} - {None}
    vocab = tokenizer.get_vocab()
    eos.update(vocab[t] for t in template.stop_tokens if t in vocab)
    generation = GenerationConfig.from_model_config(base.config)
    generation.eos_token_id = sorted(eos)
    generation.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    generation.save_pretrained(out)
