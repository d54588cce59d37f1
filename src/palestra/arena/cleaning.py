"""Cleaning battles before rating: anonymous only (optional), duplicates, identity leaks,
empty or errored answers, a per-user daily vote cap, and anomalous voters. Every filter
reports how many battles it removed.

Anomalous voters: for each voter with enough votes, each vote's outcome is scored against
the consensus of that model pair among the other voters: e = q / p(outcome), with q uniform
over {a wins, b wins, tie}. The running product is a test martingale under "this voter
votes like everyone else", so by Ville's inequality flagging it when it reaches 1/alpha
wrongly flags an honest voter with probability at most alpha.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from palestra.arena.battles import Battle
from palestra.arena.settings import CleaningOptions

IDENTITY_WORDS = (
    "vicuna",
    "lmsys",
    "koala",
    "uc berkeley",
    "open assistant",
    "laion",
    "chatglm",
    "chatgpt",
    "gpt-4",
    "gpt-3",
    "openai",
    "anthropic",
    "claude",
    "bard",
    "palm",
    "lamda",
    "google",
    "gemini",
    "llama",
    "meta ai",
    "mistral",
    "qwen",
    "alibaba",
    "deepseek",
    "palestra",
)
# FastChat's error texts, and the web UI's own ("**Error:** ..." in a failed reply).
ERROR_MARKERS = ("network error", "**error**", "**error:**", "(error_code:", "conversation limit")


@dataclass(frozen=True)
class FilterReport:
    name: str
    removed: int
    note: str = ""


def identity_leaks(text: str, names: tuple[str, ...] = ()) -> list[str]:
    """The identity words (and model names) an answer mentions: a battle whose answers
    name a model is no longer anonymous."""
    lowered = text.lower()
    return [word for word in (*IDENTITY_WORDS, *(n.lower() for n in names)) if word in lowered]


def _leaks_identity(battle: Battle) -> bool:
    """Flagged when the vote was stored (the web UI checks), or an answer names a model."""
    if battle.extra.get("identity_leak"):
        return True
    text = " ".join(battle.answers("a") + battle.answers("b"))
    return bool(identity_leaks(text, (battle.model_a, battle.model_b)))


def _empty_or_errored(battle: Battle) -> bool:
    if "errored" in battle.extra:  # judged when the vote was stored (the store's facts)
        return bool(battle.extra["errored"])
    if not (battle.conversation_a or battle.conversation_b):
        return False  # nothing to judge: records without conversations pass
    for side in ("a", "b"):
        answers = battle.answers(side)
        if not answers or any(not a.strip() for a in answers):
            return True
        if any(marker in a.lower() for a in answers for marker in ERROR_MARKERS):
            return True
    return False


def dedup_key(battle: Battle) -> str:
    """What makes two votes the same vote: the voter, the prompt (or question id) and the
    pair; without a voter or a prompt, the whole record. A digest, so the store keeps it."""
    if "dedup_key" in battle.extra:  # computed when the vote was stored (the store's facts)
        return str(battle.extra["dedup_key"])
    prompt = next((m["content"] for m in battle.conversation_a if m["role"] == "user"), "")
    if battle.judge and (prompt or battle.question_id):
        text = json.dumps(
            [battle.judge, battle.question_id or prompt, battle.model_a, battle.model_b]
        )
    else:
        text = json.dumps(battle.to_record(), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()


def battle_verdicts(battle: Battle) -> dict[str, Any]:
    """The cleaning's per-battle verdicts, judged once (the store keeps them with the vote,
    so the leaderboard never reads a conversation again)."""
    return {
        "dedup_key": dedup_key(battle),
        "identity_leak": _leaks_identity(battle),
        "errored": _empty_or_errored(battle),
    }


def anomalous_voters(battles: list[Battle], alpha: float, min_votes: int) -> set[str]:
    pair_counts: dict[tuple[str, str], Counter[int]] = defaultdict(Counter)
    votes_by_judge: dict[str, list[tuple[tuple[str, str], int, float]]] = defaultdict(list)
    for battle in battles:
        pair, outcome = _oriented(battle)
        pair_counts[pair][outcome] += 1
        if battle.judge:
            votes_by_judge[battle.judge].append((pair, outcome, battle.tstamp))
    flagged = set()
    for judge, votes in votes_by_judge.items():
        if len(votes) < min_votes:
            continue
        own: dict[tuple[str, str], Counter[int]] = defaultdict(Counter)
        for pair, outcome, _ in votes:
            own[pair][outcome] += 1
        evidence = 1.0
        for pair, outcome, _ in sorted(votes, key=lambda v: v[2]):
            everyone, mine = pair_counts[pair], own[pair]
            total = everyone.total() - mine.total()
            consensus = (everyone[outcome] - mine[outcome] + 1) / (total + 3)  # add-one
            evidence *= (1 / 3) / consensus
            if evidence >= 1 / alpha:
                flagged.add(judge)
                break
    return flagged


def _oriented(battle: Battle) -> tuple[tuple[str, str], int]:
    """The pair in name order, and the outcome from its first model's side."""
    outcome = {"model_a": 0, "model_b": 1}.get(battle.winner, 2)
    if battle.model_a <= battle.model_b:
        return (battle.model_a, battle.model_b), outcome
    return (battle.model_b, battle.model_a), {0: 1, 1: 0}.get(outcome, 2)


def clean(
    battles: list[Battle], options: CleaningOptions | None = None
) -> tuple[list[Battle], list[FilterReport]]:
    options = options or CleaningOptions()
    reports: list[FilterReport] = []

    def apply(name: str, keep: list[Battle], note: str = "") -> list[Battle]:
        reports.append(FilterReport(name, len(current) - len(keep), note))
        return keep

    current = [b for b in battles if b.model_a and b.model_b and b.model_a != b.model_b]
    reports.append(FilterReport("missing or identical model names", len(battles) - len(current)))
    if options.anony_only:
        current = apply("named (not anonymous) battles", [b for b in current if b.anony])
    if options.dedup:
        seen: set[str] = set()
        unique = []
        for battle in current:
            key = dedup_key(battle)
            if key not in seen:
                seen.add(key)
                unique.append(battle)
        current = apply("duplicates", unique)
    if options.drop_empty_or_errored:
        current = apply(
            "empty or errored answers", [b for b in current if not _empty_or_errored(b)]
        )
    if options.drop_identity_leaks:
        has_text = any(b.conversation_a for b in current)
        current = apply(
            "identity leaks",
            [b for b in current if not _leaks_identity(b)],
            "" if has_text else "no conversation texts to check",
        )
    if options.daily_vote_cap:
        per_day: Counter[tuple[str, str]] = Counter()
        capped = []
        for battle in sorted(current, key=lambda b: b.tstamp):
            day = time.strftime("%Y-%m-%d", time.gmtime(battle.tstamp))
            per_day[(battle.judge, day)] += 1
            if not battle.judge or per_day[(battle.judge, day)] <= options.daily_vote_cap:
                capped.append(battle)
        current = apply(f"votes past {options.daily_vote_cap} per user per day", capped)
    if options.anomaly_alpha:
        flagged = anomalous_voters(current, options.anomaly_alpha, options.anomaly_min_votes)
        current = apply(
            "anomalous voters",
            [b for b in current if b.judge not in flagged],
            f"{len(flagged)} voter(s) flagged at alpha={options.anomaly_alpha}",
        )
    return current, reports
