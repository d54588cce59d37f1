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
from collections import Counter
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
    """Flagged when the vote was stored (the web UI checks; the store's facts keep the
    whole verdict as a boolean), or an answer names a model."""
    flag = battle.extra.get("identity_leak")
    if flag or flag is False:
        return bool(flag)
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
    """Voters whose running evidence against "votes like everyone else" reaches 1/alpha
    (the module's docstring), computed for all voters at once with numpy: each vote's
    factor from its pair's counts without the voter's own votes, a running sum of logs per
    voter in time order, flagged when it reaches log(1/alpha)."""
    import numpy as np

    count = len(battles)
    pairs: dict[tuple[str, str], int] = {}
    judges: dict[str, int] = {}
    pair_of = np.empty(count, dtype=np.int64)
    outcome = np.empty(count, dtype=np.int64)
    judge_of = np.empty(count, dtype=np.int64)
    tstamp = np.empty(count, dtype=float)
    for i, battle in enumerate(battles):
        pair, outcome[i] = _oriented(battle)
        pair_of[i] = pairs.setdefault(pair, len(pairs))
        judge_of[i] = judges.setdefault(battle.judge, len(judges)) if battle.judge else -1
        tstamp[i] = battle.tstamp
    judged = np.flatnonzero(judge_of >= 0)
    votes = np.bincount(judge_of[judged], minlength=len(judges))
    eligible = judged[votes[judge_of[judged]] >= min_votes]
    if not len(eligible):
        return set()
    everyone = np.zeros((len(pairs), 3))
    np.add.at(everyone, (pair_of, outcome), 1)
    # The voter's own counts on each of their pairs.
    own_key = judge_of[eligible] * len(pairs) + pair_of[eligible]
    groups, group_of = np.unique(own_key, return_inverse=True)
    own = np.zeros((len(groups), 3))
    np.add.at(own, (group_of, outcome[eligible]), 1)
    others = everyone[pair_of[eligible]] - own[group_of]
    mine = outcome[eligible]
    consensus = (others[np.arange(len(eligible)), mine] + 1) / (others.sum(axis=1) + 3)
    log_factor = np.log((1 / 3) / consensus)
    # Each voter's votes in time order (ties: as stored), then running sums per voter.
    order = np.lexsort((eligible, tstamp[eligible], judge_of[eligible]))
    voter = judge_of[eligible][order]
    running = np.cumsum(log_factor[order])
    starts = np.flatnonzero(np.r_[True, voter[1:] != voter[:-1]])
    before = np.repeat(np.r_[0.0, running[starts[1:] - 1]], np.diff(np.r_[starts, len(voter)]))
    reached = (running - before) >= np.log(1 / alpha) - 1e-9
    names = list(judges)
    return {names[j] for j in np.unique(voter[reached])}


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
