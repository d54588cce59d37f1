"""`palestra train dpo | kto | orpo | reward`: preference tuning on TRL's trainers, from
the records `palestra arena preferences` writes (or any file in TRL's conversational
preference formats); `reward` trains a reward model (a score head on the model) that
`palestra judge grade --judge-reward-model` uses as a pairwise judge.

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
    "reward": "A reward model that scores answers as the voters ranked them (a pairwise judge)",
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
class AssistantTurnsOnly:
    """TRL's collator, then: in an answer that runs over several turns (a multi-turn
    battle whose sides parted early), the user's later messages are context, not part of
    the answer to prefer; their tokens leave the completion mask, as SFT's masks leave
    them out (the same renderer decides). `answers` names the example keys whose rows the
    inner collator stacks, in order: ("chosen", "rejected") for DPO, ("completion",) for
    KTO. A row whose tokens differ from the renderer's keeps TRL's mask, counted."""

    inner: Any
    template: Any
    tokenizer: Any
    answers: tuple[str, ...]
    masked_rows: int = 0
    mismatched_rows: int = 0

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch = self.inner(examples)
        completion_mask = batch["completion_mask"]
        rows = [self._mask(example, key) for key in self.answers for example in examples]
        for row, mask in enumerate(rows):
            if mask is not None:
                width = min(len(mask), completion_mask.shape[1])
                completion_mask[row, :width] *= torch.tensor(
                    mask[:width], dtype=completion_mask.dtype
                )
        return batch

    def _mask(self, example: dict[str, Any], key: str) -> list[int] | None:
        from palestra.templates.render import render_conversation

        answer = example[key]
        if all(message["role"] == "assistant" for message in answer):
            return None  # TRL's mask is already the answer alone
        prompt_ids, answer_ids = example["prompt_ids"], example[f"{key}_ids"]
        rendered = render_conversation(self.template, example["prompt"] + answer, self.tokenizer)
        if rendered.input_ids != prompt_ids + answer_ids:
            self.mismatched_rows += 1
            return None
        self.masked_rows += 1
        return [0] * len(prompt_ids) + rendered.loss_mask[len(prompt_ids) :]


@dataclass
class PreferenceResult:
    out: Path
    method: str
    records: int
    losses: list[float]
    steps: int
    rewards: dict[str, float]  # the trainer's last logged reward figures
    turns_masked: int = 0  # batch rows whose answer had user turns masked out
    mask_mismatches: int = 0  # such rows left with TRL's mask (tokens differed)


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
    if not paired and method in ("dpo", "orpo", "reward"):
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
        if method == "reward":
            from trl import RewardConfig, RewardTrainer

            return RewardTrainer, RewardConfig
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        return ORPOTrainer, ORPOConfig
    except ImportError as exc:
        raise UnsupportedError(
            f"palestra train {method} runs on TRL: pip install 'palestra[preference]'"
        ) from exc


def _collator(method: str, template: Any, tokenizer: Any, max_length: int) -> Any:
    """DPO's and KTO's own collators with user turns masked out of answers; ORPO (TRL's
    experimental trainer) keeps its own."""
    if method == "dpo":
        from trl.trainer.dpo_trainer import DataCollatorForPreference

        pairs = DataCollatorForPreference(
            pad_token_id=tokenizer.pad_token_id, max_length=max_length
        )
        return AssistantTurnsOnly(pairs, template, tokenizer, ("chosen", "rejected"))
    if method == "kto":
        from trl.trainer.kto_trainer import DataCollatorForUnpairedPreference

        labelled = DataCollatorForUnpairedPreference(
            pad_token_id=tokenizer.pad_token_id, max_length=max_length
        )
        return AssistantTurnsOnly(labelled, template, tokenizer, ("completion",))
    return None


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
    model = load_for_training(path, config, attach_lora=False, score_head=method == "reward")
    if method == "reward":
        model.config.pad_token_id = tokenizer.pad_token_id  # the head reads the last real token
    arguments = config.trainer_arguments(eval_split=False)
    arguments["max_length"] = config.max_length
    if method != "reward":
        arguments["beta"] = config.beta
    if method == "kto":  # KTO's KL estimate needs batches of two or more
        arguments["per_device_train_batch_size"] = max(2, config.batch_size)
    collator = _collator(method, template, tokenizer, config.max_length)
    trainer = trainer_class(
        model=model,
        args=config_class(**arguments),
        train_dataset=Dataset.from_list(records),
        processing_class=tokenizer,
        peft_config=lora_config(config, "SEQ_CLS" if method == "reward" else "CAUSAL_LM")
        if lora
        else None,
        **({"data_collator": collator} if collator is not None else {}),
    )
    trainer.train(resume_from_checkpoint=config.resume_from())
    history = trainer.state.log_history
    losses = [entry["loss"] for entry in history if "loss" in entry]
    logged = [entry for entry in history if any(k.startswith("rewards/") for k in entry)]
    rewards = {
        k: float(v) for k, v in (logged[-1] if logged else {}).items() if k.startswith("rewards/")
    }
    out = Path(config.out)
    save_servable(trainer.model, tokenizer, template, out, generates=method != "reward")
    summary = {
        "method": method,
        "config": config.model_dump(),
        "records": len(records),
        "losses": losses,
        "rewards": rewards,
        "steps": trainer.state.global_step,
        "rows_with_user_turns_masked": collator.masked_rows if collator else 0,
        "rows_left_unmasked": collator.mismatched_rows if collator else 0,
    }
    (out / "palestra_training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return PreferenceResult(
        out,
        method,
        len(records),
        losses,
        trainer.state.global_step,
        rewards,
        collator.masked_rows if collator else 0,
        collator.mismatched_rows if collator else 0,
    )
