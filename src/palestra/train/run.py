"""What every training run shares, SFT and preference tuning alike: the settings for the
model, the schedule, LoRA / QLoRA, precision and logging (`TrainingRun`), loading the model
to train, the transformers `TrainingArguments` those settings mean, and saving a folder
that serves as is (weights or adapter, the tokenizer with the chat template it learned,
a generation config whose eos ids include the template's stop tokens)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Literal

from palestra.backends.options import TRUST_REMOTE_CODE_HELP
from palestra.core.errors import InvalidRequestError, UnsupportedError
from palestra.core.settings import Settings, option

ATTENTION = ("eager", "sdpa", "flash_attention_2", "flash_attention_3")


class TrainingRun(Settings):
    """A training run's model, schedule, LoRA, precision and logging."""

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
    epochs: float = option(1.0, "Passes over the data.")
    max_steps: int = option(-1, "Optimiser steps; overrides --epochs when > 0.")
    learning_rate: float = option(2e-5, "Peak learning rate.", flag="--lr")
    batch_size: int = option(8, "Examples per device and step.")
    grad_accum: int = option(1, "Steps whose gradients are summed before an update.")
    warmup_ratio: float = option(0.03, "Share of the steps spent warming the rate up.")
    weight_decay: float = option(0.0, "AdamW weight decay.")
    lora: bool = option(False, "Train a LoRA adapter (peft) instead of all weights.")
    qlora: bool = option(False, "LoRA on a 4-bit base (CUDA, bitsandbytes).")
    lora_r: int = option(8, "LoRA rank.")
    lora_alpha: int = option(16, "LoRA alpha.")
    lora_dropout: float = option(0.05, "LoRA dropout.")
    lora_target_modules: list[str] = option(
        ["q_proj", "v_proj"], "Modules LoRA adapts.", comma=True
    )
    bf16: bool = option(
        False, "Mixed precision in bfloat16 (CPUs too); a LoRA base is loaded in bfloat16."
    )
    fp16: bool = option(False, "Mixed precision in float16 (CUDA only).")
    gradient_checkpointing: bool = option(
        False, "Recompute activations in the backward pass: less memory, about 30% slower."
    )
    attn_implementation: str | None = option(
        None, "Attention kernel: eager, sdpa or flash_attention_2/3 (when installed)."
    )
    logging_steps: int = option(10, "Log the loss every N steps.")
    save_steps: int = option(500, "Save a checkpoint every N steps.")
    report_to: Literal["none", "tensorboard", "wandb"] = option(
        "none", "Where to log: none, tensorboard or wandb."
    )
    resume: bool = option(False, "Continue from the last checkpoint in --out.")
    seed: int = option(0, "Random seed (data order, initialisation).")
    device: Literal["auto", "cpu"] = option("auto", "auto (accelerate decides) or cpu.")

    def check(self) -> None:
        """Refuse settings that cannot run here, each with what to do instead."""
        import torch

        if self.report_to not in ("none", "tensorboard", "wandb"):
            raise InvalidRequestError("--report-to must be none, tensorboard or wandb")
        package = {"tensorboard": "tensorboard", "wandb": "wandb"}.get(self.report_to)
        if package and importlib.util.find_spec(package) is None:
            raise UnsupportedError(f"--report-to {self.report_to} needs: pip install {package}")
        if self.bf16 and self.fp16:
            raise InvalidRequestError("--bf16 and --fp16 exclude each other; pick one")
        cuda = torch.cuda.is_available() and self.device != "cpu"
        if self.fp16 and not cuda:
            raise UnsupportedError("--fp16 mixed precision needs a CUDA GPU; on a CPU use --bf16")
        if self.qlora and not torch.cuda.is_available():
            raise UnsupportedError("QLoRA quantises to 4 bits with bitsandbytes, which needs CUDA")
        kernel = self.attn_implementation
        if kernel is not None and kernel not in ATTENTION:
            raise InvalidRequestError(
                f"--attn-implementation {kernel!r}: expected one of {', '.join(ATTENTION)}"
            )
        if kernel and kernel.startswith("flash_attention"):
            module = "flash_attn" if kernel == "flash_attention_2" else "flash_attn_interface"
            if importlib.util.find_spec(module) is None or not cuda:
                raise UnsupportedError(
                    f"--attn-implementation {kernel} needs a CUDA GPU and the {module} package "
                    "(pip install flash-attn); sdpa needs nothing"
                )

    def trainer_arguments(self, eval_split: bool) -> dict[str, Any]:
        """The transformers `TrainingArguments` these settings mean (TRL's configs take
        the same names)."""
        return {
            "output_dir": self.out,
            "num_train_epochs": self.epochs,
            "max_steps": self.max_steps,
            "learning_rate": self.learning_rate,
            "per_device_train_batch_size": self.batch_size,
            "per_device_eval_batch_size": self.batch_size,
            "gradient_accumulation_steps": self.grad_accum,
            "warmup_steps": self.warmup_ratio,  # a float in [0, 1) is a share of all steps
            "weight_decay": self.weight_decay,
            "bf16": self.bf16,
            "fp16": self.fp16,
            "gradient_checkpointing": self.gradient_checkpointing,
            "logging_steps": self.logging_steps,
            "save_steps": self.save_steps,
            "save_total_limit": 2,
            "eval_strategy": "epoch" if eval_split else "no",
            "report_to": [] if self.report_to == "none" else [self.report_to],
            "remove_unused_columns": False,
            "seed": self.seed,
            "use_cpu": self.device == "cpu",
            "disable_tqdm": False,
        }

    def resume_from(self) -> bool | None:
        return True if self.resume and any(Path(self.out).glob("checkpoint-*")) else None


def model_and_template(run: TrainingRun, what: str) -> tuple[str, Any, Any]:
    """(model folder, tokenizer with a pad token, the chat template to render with) for a
    causal chat model; `what` names the training in errors."""
    run.check()  # before transformers is imported: a bad setting costs no wait
    from transformers import AutoTokenizer

    from palestra.backends.hf.loading import quiet_transformers
    from palestra.models.inspect import check_remote_code, inspect_model, resolve_model_path
    from palestra.templates.resolve import resolve_template

    quiet_transformers()
    path = resolve_model_path(run.model_path, run.revision)
    info = inspect_model(path)
    if info.kind != "chat":
        raise UnsupportedError(f"{path} is a {info.kind} model; {what} trains causal chat models")
    remote_code = check_remote_code([path], run.trust_remote_code, "--trust-remote-code")
    tokenizer = AutoTokenizer.from_pretrained(path, **remote_code)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    family = info.family
    template = resolve_template(run.template, tokenizer, family.template if family else None)
    return path, tokenizer, template


def load_for_training(
    path: str, run: TrainingRun, attach_lora: bool = True, score_head: bool = False
) -> Any:
    """The causal LM to train: fp32 weights for full training (mixed precision casts on
    the fly), the base in bfloat16 for LoRA with --bf16, 4-bit for QLoRA; with the LoRA
    adapter attached unless `attach_lora` is false (TRL's trainers attach it themselves).
    With `score_head`, the model gets a one-number head instead (a reward model)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    lora = run.lora or run.qlora
    dtype = torch.bfloat16 if (run.bf16 and lora) else torch.float32
    options: dict[str, Any] = {"dtype": dtype}
    if run.qlora:
        from transformers import BitsAndBytesConfig

        options = {
            "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=torch.bfloat16,
            ),
            "device_map": {"": 0},
        }
    if run.attn_implementation:
        options["attn_implementation"] = run.attn_implementation
    options["trust_remote_code"] = run.trust_remote_code  # checked with the tokenizer
    if score_head:
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, **options)
    else:
        model = AutoModelForCausalLM.from_pretrained(path, **options)
    model.config.use_cache = False  # training: no KV cache (and packed masks need none)
    if not (lora and attach_lora):
        return model
    try:
        from peft import get_peft_model, prepare_model_for_kbit_training
    except ImportError as exc:
        raise UnsupportedError("LoRA needs peft: pip install 'palestra[peft]'") from exc
    if run.qlora:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=run.gradient_checkpointing
        )
    elif run.gradient_checkpointing:
        model.enable_input_require_grads()  # frozen embeddings still pass gradients on
    try:
        return get_peft_model(model, lora_config(run))
    except ValueError as exc:  # target modules that the model does not have
        raise InvalidRequestError(f"--lora-target-modules: {exc}") from exc


def lora_config(run: TrainingRun, task: str = "CAUSAL_LM") -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=run.lora_r,
        lora_alpha=run.lora_alpha,
        lora_dropout=run.lora_dropout,
        target_modules=run.lora_target_modules,
        task_type=task,
    )


def save_servable(
    model: Any, tokenizer: Any, template: Any, out: Path, generates: bool = True
) -> None:
    """Weights (or adapter), tokenizer with the training chat template, and for a model
    that generates, a generation config."""
    from transformers import GenerationConfig

    out.mkdir(parents=True, exist_ok=True)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.config.use_cache = True
    tokenizer.chat_template = template.jinja  # the template the model learned
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    if generates:
        eos = {tokenizer.eos_token_id} - {None}
        vocab = tokenizer.get_vocab()
        eos.update(vocab[t] for t in template.stop_tokens if t in vocab)
        generation = GenerationConfig.from_model_config(base.config)
        generation.eos_token_id = sorted(eos)
        generation.pad_token_id = tokenizer.pad_token_id
        generation.save_pretrained(out)
