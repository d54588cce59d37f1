"""`palestra train dpo | kto | orpo`: preference tuning on TRL's trainers, from the
records `palestra arena preferences` writes (or any file in TRL's conversational
preference formats).

The same `TrainingRun` settings as SFT (model, schedule, LoRA / QLoRA, precision), and the
same chat template: the tokenizer is given the resolved template's Jinja source, so TRL
renders prompts and answers exactly as SFT and serving do, and the trained folder is saved
the same way, servable with no flags. With LoRA the reference model is the base itself
(the adapter switched off), so no second copy of the model is held.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from palestra.core.errors import InvalidRequestError, UnsupportedError
from palestra.core.settings import option
from palestra.train.data import read_records
from palestra.train.run import TrainingRun, load_for_training, model_and_template, save_servable

Method = Literal["dpo", "kto", "orpo"]
METHODS: dict[str, str] = {
    "dpo": "Direct Preference Optimisation (chosen vs rejected, against a reference model)",
    "kto": "Kahneman-Tversky Optimisation (good or bad answers, pairs not needed)",
    "orpo": "Odds Ratio Preference Optimisation (SFT plus preference, no reference model)",
}


class PreferenceConfig(TrainingRun):
    """A preference-tuning run: the preference file, the method's strength, and the
    shared training settings."""

    data: str = option(
        ...,
        "Preferences (JSON lines): prompt/chosen/rejected pairs, or prompt/completion/label "
        "for KTO, as `palestra arena preferences` writes.",
        positional=True,
    )
    beta: float = option(
        0.1, "Strength of the preference term (DPO/KTO: how far from the reference; ORPO: lambda)."
    )
    learning_rate: float = option(5e-6, "Peak learning rate.", flag="--lr")


@dataclass
class PreferenceResult:
    out: Path
    method: str
    records: int
    losses: list[float]
    steps: int
    rewards: dict[str, float]  # the trainer's last logged reward figures


def _messages(value: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise InvalidRequestError(f"{where}: expected a non-empty list of messages")
    for message in value:
        if (
            not isinstance(message, dict)
            or message.get("role") not in ("system", "user", "assistant")
            or not isinstance(message.get("content"), str)
        ):
            raise InvalidRequestError(f"{where}: bad message {message!r}")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def load_preferences(path: str, method: str) -> list[dict[str, Any]]:
    """The records, checked: pairs for DPO and ORPO; pairs or labelled answers for KTO."""
    records = read_records(path)
    if not records:
        raise InvalidRequestError(f"{path} has no preference records")
    paired = "chosen" in records[0]
    if not paired and method != "kto":
        raise InvalidRequestError(
            f"{path} holds labelled answers (prompt/completion/label); {method} needs "
            "chosen/rejected pairs: write them with palestra arena preferences --format pairs"
        )
    checked = []
    for index, record in enumerate(records):
        where = f"{path} record {index}"
        prompt = _messages(record.get("prompt"), f"{where} prompt")
        if paired:
            checked.append(
                {
                    "prompt": prompt,
                    "chosen": _messages(record.get("chosen"), f"{where} chosen"),
                    "rejected": _messages(record.get("rejected"), f"{where} rejected"),
                }
            )
        else:
            if not isinstance(record.get("label"), bool):
                raise InvalidRequestError(f"{where}: label must be true or false")
            checked.append(
                {
                    "prompt": prompt,
                    "completion": _messages(record.get("completion"), f"{where} completion"),
                    "label": record["label"],
                }
            )
    return checked


def _trainer(method: str) -> tuple[Any, Any]:
    """TRL's (trainer class, config class) for the method."""
    try:
        if method == "dpo":
            from trl import DPOConfig, DPOTrainer

            return DPOTrainer, DPOConfig
        if method == "kto":
            from trl import KTOConfig, KTOTrainer

            return KTOTrainer, KTOConfig
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        return ORPOTrainer, ORPOConfig
    except ImportError as exc:
        raise UnsupportedError(
            f"palestra train {method} runs on TRL: pip install 'palestra[preference]'"
        ) from exc


def run_preference(method: str, config: PreferenceConfig) -> PreferenceResult:
    if method not in METHODS:
        raise InvalidRequestError(
            f"unknown method {method!r}; expected one of {', '.join(METHODS)}"
        )
    trainer_class, config_class = _trainer(method)
    from datasets import Dataset

    from palestra.train.run import lora_config

    path, tokenizer, template = model_and_template(config, method.upper())
    tokenizer.chat_template = template.jinja  # TRL renders with the template SFT uses
    records = load_preferences(config.data, method)
    print(f"{len(records)} preference records from {config.data}", flush=True)
    lora = config.lora or config.qlora
    # TRL attaches the adapter itself (and then uses the base as the reference model)
    model = load_for_training(path, config, attach_lora=False)
    arguments = config.trainer_arguments(eval_split=False)
    arguments["beta"] = config.beta
    arguments["max_length"] = config.max_length
    if method == "kto":  # KTO's KL estimate needs batches of two or more
        arguments["per_device_train_batch_size"] = max(2, config.batch_size)
    trainer = trainer_class(
        model=model,
        args=config_class(**arguments),
        train_dataset=Dataset.from_list(records),
        processing_class=tokenizer,
        peft_config=lora_config(config) if lora else None,
    )
    trainer.train(resume_from_checkpoint=config.resume_from())
    history = trainer.state.log_history
    losses = [entry["loss"] for entry in history if "loss" in entry]
    logged = [entry for entry in history if any(k.startswith("rewards/") for k in entry)]
    rewards = {k: float(v) for k, v in (logged[-1] if logged else {}).items() if "/" in k}
    out = Path(config.out)
    save_servable(trainer.model, tokenizer, template, out)
    summary = {
        "method": method,
        "config": config.model_dump(),
        "records": len(records),
        "losses": losses,
        "rewards": rewards,
        "steps": trainer.state.global_step,
    }
    (out / "palestra_training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return PreferenceResult(out, method, len(records), losses, trainer.state.global_step, rewards)
