"""`Battle`: one anonymous or named comparison of two models' answers, and loading battles
from FastChat's formats: cleaned battle files (a JSON list, or JSONL, of records with
model_a, model_b, winner...) and the web server's conversation/vote JSONL logs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from palestra.core.errors import InvalidRequestError

Winner = Literal["model_a", "model_b", "tie", "tie (bothbad)"]
WINNERS: tuple[str, ...] = ("model_a", "model_b", "tie", "tie (bothbad)")
# The vote kinds, as FastChat logs them: on a battle (with the winner each one means) and
# on one model's answer. Everything else (store, UI, export) reads them from here.
BATTLE_VOTES: dict[str, Winner] = {
    "leftvote": "model_a",
    "rightvote": "model_b",
    "tievote": "tie",
    "bothbad_vote": "tie (bothbad)",
}
MODEL_VOTES: tuple[str, ...] = ("upvote", "downvote", "flag")


@dataclass
class Battle:
    model_a: str
    model_b: str
    winner: Winner
    judge: str = ""
    turn: int = 1
    anony: bool = True
    language: str = ""
    tstamp: float = 0.0
    question_id: str = ""
    conversation_a: list[dict[str, str]] = field(default_factory=list)
    conversation_b: list[dict[str, str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def field(self, name: str) -> Any:
        """A named attribute or extra field (for category filters)."""
        return (
            getattr(self, name) if hasattr(self, name) and name != "extra" else self.extra.get(name)
        )

    def answers(self, side: str) -> list[str]:
        conversation = self.conversation_a if side == "a" else self.conversation_b
        return [m["content"] for m in conversation if m.get("role") == "assistant"]

    def to_record(self) -> dict[str, Any]:
        record = {
            "model_a": self.model_a,
            "model_b": self.model_b,
            "winner": self.winner,
            "judge": self.judge,
            "turn": self.turn,
            "anony": self.anony,
            "language": self.language,
            "tstamp": self.tstamp,
            "question_id": self.question_id,
        }
        if self.conversation_a or self.conversation_b:
            record["conversation_a"] = self.conversation_a
            record["conversation_b"] = self.conversation_b
        return {**record, **self.extra}


_KNOWN = {
    "model_a",
    "model_b",
    "winner",
    "judge",
    "turn",
    "anony",
    "language",
    "tstamp",
    "question_id",
    "conversation_a",
    "conversation_b",
}


def _conversation(raw: Any) -> list[dict[str, str]]:
    """OpenAI-style [{role, content}] or FastChat's [[role, text], ...] into messages."""
    messages = []
    for item in raw or []:
        if isinstance(item, dict):
            messages.append(
                {"role": str(item.get("role", "")), "content": str(item.get("content") or "")}
            )
        elif isinstance(item, list | tuple) and len(item) == 2:
            role = str(item[0]).lower()
            role = (
                "user"
                if role in ("human", "user", "usr")
                else "assistant"
                if role in ("gpt", "assistant", "bot")
                else role
            )
            text = item[1][0] if isinstance(item[1], list | tuple) else item[1]
            messages.append({"role": role, "content": str(text or "")})
    return messages


def battle_from_record(record: dict[str, Any]) -> Battle:
    """A cleaned-battle record (FastChat's clean_battle_*.json format)."""
    try:
        winner = str(record["winner"])
        model_a, model_b = str(record["model_a"]), str(record["model_b"])
    except KeyError as exc:
        raise InvalidRequestError(
            f"battle record without {exc.args[0]!r}: {json.dumps(record)[:200]}"
        ) from exc
    if winner not in WINNERS:
        raise InvalidRequestError(f"winner {winner!r} is not one of {', '.join(WINNERS)}")
    return Battle(
        model_a=model_a,
        model_b=model_b,
        winner=winner,  # type: ignore[arg-type]
        judge=str(record.get("judge", "")),
        turn=int(record.get("turn", 1) or 1),
        anony=bool(record.get("anony", True)),
        language=str(record.get("language", "") or ""),
        tstamp=float(record.get("tstamp", 0) or 0),
        question_id=str(record.get("question_id", "") or ""),
        conversation_a=_conversation(record.get("conversation_a")),
        conversation_b=_conversation(record.get("conversation_b")),
        extra={k: v for k, v in record.items() if k not in _KNOWN},
    )


def battle_from_vote_log(record: dict[str, Any]) -> Battle | None:
    """A vote line of FastChat's conversation log (leftvote, rightvote, ...), or None."""
    return battle_from_vote(
        str(record.get("type")),
        record.get("states") or [],
        record.get("models") or ["", ""],
        judge=str(record.get("ip") or record.get("judge") or ""),
        tstamp=float(record.get("tstamp", 0) or 0),
    )


def battle_from_vote(
    kind: str,
    states: list[dict[str, Any]],
    shown: list[str],
    *,
    judge: str,
    tstamp: float,
    extra: dict[str, Any] | None = None,
) -> Battle | None:
    """A battle from a vote on two conversation states (FastChat's shape), or None when
    the vote is not a battle vote."""
    winner = BATTLE_VOTES.get(kind)
    if winner is None or len(states) != 2:
        return None
    names = [str(state.get("model_name", "")) for state in states]
    conversations = []
    for state in states:
        offset = int(state.get("offset", 0) or 0)
        conversations.append(_conversation((state.get("messages") or [])[offset:]))
    return Battle(
        model_a=names[0],
        model_b=names[1],
        winner=winner,
        judge=judge,
        turn=sum(1 for m in conversations[0] if m["role"] == "user") or 1,
        anony=not any(shown),
        tstamp=tstamp,
        conversation_a=conversations[0],
        conversation_b=conversations[1],
        extra=dict(extra or {}),
    )


def load_battles(path: str | Path) -> list[Battle]:
    """Battles from a cleaned-battle JSON list, a JSONL of records, or vote logs."""
    file = Path(path)
    if not file.is_file():
        raise InvalidRequestError(f"battle file {str(file)!r} does not exist")
    text = file.read_text("utf-8")
    stripped = text.lstrip()
    records: list[dict[str, Any]]
    if stripped.startswith("["):
        records = json.loads(text)
    else:
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except ValueError as exc:
                    raise InvalidRequestError(f"{file}:{number}: not JSON ({exc})") from exc
    battles: list[Battle] = []
    for record in records:
        if "winner" in record:
            battles.append(battle_from_record(record))
        elif (battle := battle_from_vote_log(record)) is not None:
            battles.append(battle)
    return battles


def save_battles(battles: list[Battle], path: str | Path) -> None:
    Path(path).write_text(
        json.dumps([b.to_record() for b in battles], ensure_ascii=False, indent=1) + "\n", "utf-8"
    )
