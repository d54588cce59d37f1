"""Preference data out of the arena: battles (a store, FastChat vote logs, battle files
with conversations) cleaned by the arena's own pipeline, filtered, and written in TRL's
conversational preference formats.

- `pairs` (DPO, ORPO, and KTO, which unpairs them): `{"prompt": [messages], "chosen":
  [messages], "rejected": [messages]}`. The prompt is the conversation both sides share;
  the answers are what each side wrote after it. In a multi-turn battle whose answers
  differ from the first turn on, each answer is the rest of that side's conversation.
- `unpaired` (KTO): `{"prompt", "completion", "label"}`. A decided vote gives a good and a
  bad completion; a tie gives two good ones and "both bad" two bad ones (or they are
  dropped with `--ties drop`).

Nothing is dropped without a reason counted in the report; voters' ids never leave."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from palestra.arena.battles import Battle
from palestra.core.errors import InvalidRequestError
from palestra.core.settings import Settings, option

Messages = list[dict[str, str]]


class PreferenceOptions(Settings):
    """Which battles become preferences, and in which format."""

    source: str = option(
        ...,
        "Battles with conversations: a web UI store (.db / URL), FastChat conversation "
        "logs, or battle files with conversation_a/conversation_b.",
        positional=True,
    )
    out: Path = option(..., "The preference file to write (JSON lines).", positional=True)
    shape: Literal["pairs", "unpaired"] = option(
        "pairs",
        "pairs (chosen/rejected: DPO, ORPO, KTO) or unpaired (completion + label: KTO).",
        flag="--format",
    )
    ties: Literal["label", "drop"] = option(
        "label",
        "With --format unpaired: ties become two good completions and 'both bad' two bad "
        "ones (label), or are dropped (drop). Pairs always drop them.",
    )
    models: list[str] = option(
        [], "Keep battles with one of these models (repeatable).", flag="--model"
    )
    where: list[str] = option([], "FIELD=VALUE (repeatable), e.g. language=English, turn=>1.")
    since: str | None = option(None, "Keep battles from this UTC date on (YYYY-MM-DD).")
    until: str | None = option(None, "Keep battles before this UTC date (YYYY-MM-DD).")


@dataclass
class PreferenceReport:
    battles: int = 0  # read from the source
    cleaned_out: dict[str, int] = field(default_factory=dict)  # cleaning filter: removed
    dropped: Counter[str] = field(default_factory=Counter)  # reason: battles
    used: int = 0  # battles that gave records
    records: int = 0
    multi_turn: int = 0  # battles whose answers span several turns

    def lines(self) -> list[str]:
        said = [f"{self.battles} battles read"]
        said += [f"  cleaning: {name}: -{n}" for name, n in self.cleaned_out.items() if n]
        said += [f"  dropped: {reason}: -{n}" for reason, n in sorted(self.dropped.items())]
        said.append(
            f"{self.used} battles -> {self.records} records "
            f"({self.multi_turn} with answers over several turns)"
        )
        return said


def _date(text: str, flag: str) -> float:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise InvalidRequestError(f"{flag} {text!r}: expected a date as YYYY-MM-DD") from None


def split_answers(battle: Battle) -> tuple[Messages, Messages, Messages] | str:
    """(shared prompt, answer of A, answer of B), or why the battle gives no pair."""
    a, b = battle.conversation_a, battle.conversation_b
    if not a or not b:
        return "no conversation (a battle file without conversation_a/conversation_b)"
    shared = 0
    while shared < min(len(a), len(b)) and a[shared] == b[shared]:
        shared += 1
    if shared == len(a) and shared == len(b):
        return "identical answers"
    if shared >= min(len(a), len(b)):
        return "one side has no answer"
    if a[shared]["role"] != "assistant" or b[shared]["role"] != "assistant":
        return "the sides were asked different things"
    if not any(m["role"] == "user" for m in a[:shared]):
        return "no user message before the answers"
    return a[:shared], a[shared:], b[shared:]


def battle_preferences(
    battles: list[Battle], options: PreferenceOptions, report: PreferenceReport
) -> list[dict[str, Any]]:
    """The records of these (already cleaned) battles, counting what is dropped."""
    since = _date(options.since, "--since") if options.since else None
    until = _date(options.until, "--until") if options.until else None
    wanted = set(options.models)
    records: list[dict[str, Any]] = []
    for battle in battles:
        if wanted and not wanted & {battle.model_a, battle.model_b}:
            report.dropped["not one of --model"] += 1
            continue
        if (since is not None and battle.tstamp < since) or (
            until is not None and battle.tstamp >= until
        ):
            report.dropped["outside --since/--until"] += 1
            continue
        split = split_answers(battle)
        if isinstance(split, str):
            report.dropped[split] += 1
            continue
        prompt, answer_a, answer_b = split
        made = _records(battle, prompt, answer_a, answer_b, options)
        if isinstance(made, str):
            report.dropped[made] += 1
            continue
        records.extend(made)
        report.used += 1
        report.multi_turn += sum(m["role"] == "assistant" for m in answer_a) > 1
    report.records = len(records)
    return records


def _records(
    battle: Battle,
    prompt: Messages,
    answer_a: Messages,
    answer_b: Messages,
    options: PreferenceOptions,
) -> list[dict[str, Any]] | str:
    sides = {"model_a": (answer_a, battle.model_a), "model_b": (answer_b, battle.model_b)}
    if battle.winner in sides:
        (chosen, chosen_model), (rejected, rejected_model) = (
            sides[battle.winner],
            sides["model_b" if battle.winner == "model_a" else "model_a"],
        )
        if options.shape == "pairs":
            return [
                {
                    "prompt": prompt,
                    "chosen": chosen,
                    "rejected": rejected,
                    "chosen_model": chosen_model,
                    "rejected_model": rejected_model,
                }
            ]
        return [
            {"prompt": prompt, "completion": chosen, "label": True, "model": chosen_model},
            {"prompt": prompt, "completion": rejected, "label": False, "model": rejected_model},
        ]
    kind = "tie" if battle.winner == "tie" else "both bad"
    if options.shape == "pairs" or options.ties == "drop":
        return f"{kind} (no preferred answer)"
    good = battle.winner == "tie"
    return [
        {"prompt": prompt, "completion": answer, "label": good, "model": model}
        for answer, model in sides.values()
    ]


def export_preferences(options: PreferenceOptions, cleaning: Any) -> PreferenceReport:
    """Read, clean (the arena's `CleaningOptions`), filter, and write the preferences."""
    from palestra.arena.cleaning import clean
    from palestra.arena.leaderboard import filter_battles, parse_conditions
    from palestra.arena.pipeline import read_battles

    report = PreferenceReport()
    battles = read_battles(options.source)
    report.battles = len(battles)
    battles, reports = clean(battles, cleaning)
    report.cleaned_out = {r.name: r.removed for r in reports}
    if options.where:
        kept = filter_battles(battles, parse_conditions(options.where))
        report.dropped["not matching --where"] += len(battles) - len(kept)
        battles = kept
    records = battle_preferences(battles, options, report)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    with options.out.open("w", encoding="utf-8") as file:
        for record in records:
            file.write(json.dumps(record, ensure_ascii=False) + "\n")
    return report
