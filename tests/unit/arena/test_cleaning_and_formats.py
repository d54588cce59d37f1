"""Cleaning filters (each reports what it removed), the anomalous-voter test, FastChat's
battle and vote-log formats, and `palestra arena rate` end to end."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from palestra.arena.battles import Battle, load_battles
from palestra.arena.cleaning import CleaningOptions, anomalous_voters, clean
from tests.unit.arena.simulate import simulated_battles, true_ratings


def chat(answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": answer}]


def test_each_filter_removes_what_it_should() -> None:
    good = Battle(
        "x",
        "y",
        "model_a",
        judge="u1",
        question_id="1",
        conversation_a=chat("Hello."),
        conversation_b=chat("Hi!"),
    )
    battles = [
        good,
        Battle(
            "x",
            "y",
            "model_a",
            judge="u1",
            question_id="1",
            conversation_a=chat("Hello."),
            conversation_b=chat("Hi!"),
        ),  # duplicate
        Battle(
            "x",
            "y",
            "tie",
            judge="u2",
            anony=False,
            question_id="2",
            conversation_a=chat("a"),
            conversation_b=chat("b"),
        ),  # named
        Battle(
            "x",
            "y",
            "model_b",
            judge="u3",
            question_id="3",
            conversation_a=chat("I am Claude, made by Anthropic."),
            conversation_b=chat("Hi"),
        ),  # identity leak
        Battle(
            "x",
            "y",
            "model_b",
            judge="u4",
            question_id="4",
            conversation_a=chat(""),
            conversation_b=chat("Hi"),
        ),  # empty
        Battle(
            "x",
            "y",
            "model_b",
            judge="u5",
            question_id="5",
            conversation_a=chat("NETWORK ERROR DUE TO HIGH TRAFFIC."),
            conversation_b=chat("Hi"),
        ),  # errored
        Battle("x", "x", "tie", judge="u6"),  # same model twice
    ]
    kept, reports = clean(battles, CleaningOptions(anomaly_alpha=None))
    assert kept == [good]
    removed = {r.name: r.removed for r in reports}
    assert removed == {
        "missing or identical model names": 1,
        "named (not anonymous) battles": 1,
        "duplicates": 1,
        "empty or errored answers": 2,
        "identity leaks": 1,
    }


def test_daily_vote_cap() -> None:
    battles = [
        Battle("x", "y", "model_a", judge="u", tstamp=86400 * 3 + i, question_id=str(i))
        for i in range(10)
    ]
    kept, reports = clean(battles, CleaningOptions(daily_vote_cap=4, anomaly_alpha=None))
    assert len(kept) == 4 and reports[-1].removed == 6


def test_anomalous_voter_is_flagged_and_honest_ones_rarely() -> None:
    truth = true_ratings(6, seed=1, spread=600)
    battles = simulated_battles(truth, 20_000, seed=2)  # 50 honest users
    strong = {f"m{i:03d}" for i in np.argsort(-truth)[:3]}
    for k in range(40):  # votes for the weaker model every time
        a, b = f"m{np.argsort(-truth)[0]:03d}", f"m{np.argsort(-truth)[5]:03d}"
        battles.append(
            Battle(a, b, "model_b" if a in strong else "model_a", judge="troll", tstamp=1e6 + k)
        )
    flagged = anomalous_voters(battles, alpha=0.05, min_votes=5)
    assert "troll" in flagged
    honest_flagged = len(flagged - {"troll"})
    assert honest_flagged <= 5  # alpha bounds the false-flag rate (50 honest voters)


def one_voter_at_a_time(battles: list[Battle], alpha: float, min_votes: int) -> set[str]:
    """The anomaly test written plainly, vote by vote: the oracle for the vectorised one."""
    from collections import Counter, defaultdict

    def oriented(battle: Battle) -> tuple[tuple[str, str], int]:
        outcome = {"model_a": 0, "model_b": 1}.get(battle.winner, 2)
        if battle.model_a <= battle.model_b:
            return (battle.model_a, battle.model_b), outcome
        return (battle.model_b, battle.model_a), {0: 1, 1: 0}.get(outcome, 2)

    everyone: dict[tuple[str, str], Counter[int]] = defaultdict(Counter)
    by_judge: dict[str, list[tuple[tuple[str, str], int, float]]] = defaultdict(list)
    for battle in battles:
        pair, outcome = oriented(battle)
        everyone[pair][outcome] += 1
        if battle.judge:
            by_judge[battle.judge].append((pair, outcome, battle.tstamp))
    flagged = set()
    for judge, votes in by_judge.items():
        if len(votes) < min_votes:
            continue
        own: dict[tuple[str, str], Counter[int]] = defaultdict(Counter)
        for pair, outcome, _ in votes:
            own[pair][outcome] += 1
        evidence = 1.0
        for pair, outcome, _ in sorted(votes, key=lambda v: v[2]):
            others = everyone[pair] - own[pair]
            evidence *= (1 / 3) / ((others[outcome] + 1) / (others.total() + 3))
            if evidence >= 1 / alpha:
                flagged.add(judge)
                break
    return flagged


def test_the_vectorised_anomaly_test_matches_the_plain_one() -> None:
    rng = np.random.default_rng(7)
    models = [f"m{i}" for i in range(6)]
    winners = ("model_a", "model_b", "tie", "tie (bothbad)")
    for round_ in range(5):
        battles = []
        for _ in range(3000):
            a, b = rng.choice(models, 2, replace=False)
            judge = f"u{rng.integers(60)}" if rng.random() > 0.05 else ""
            if judge in ("u1", "u2") and rng.random() < 0.9:  # mostly the later name wins
                winner = "model_a" if a > b else "model_b"
            else:
                winner = str(rng.choice(winners))
            when = float(rng.integers(500))
            battles.append(Battle(str(a), str(b), winner, judge=judge, tstamp=when))  # type: ignore[arg-type]
        for alpha, min_votes in ((0.05, 5), (0.2, 20)):
            expected = one_voter_at_a_time(battles, alpha, min_votes)
            assert anomalous_voters(battles, alpha, min_votes) == expected, round_
            assert round_ or expected  # the data flags someone: the check means something


def test_fastchat_formats(tmp_path: Path) -> None:
    records = [
        {
            "model_a": "x",
            "model_b": "y",
            "winner": "tie (bothbad)",
            "judge": "arena_user_1",
            "turn": 1,
            "anony": True,
            "language": "English",
            "tstamp": 1.5,
            "conversation_a": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "ax"},
            ],
            "conversation_b": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "ay"},
            ],
            "category_tag": {"math": True},
        }
    ]
    cleaned = tmp_path / "clean_battle.json"
    cleaned.write_text(json.dumps(records))
    battle = load_battles(cleaned)[0]
    assert (battle.winner, battle.language, battle.answers("b")) == (
        "tie (bothbad)",
        "English",
        ["ay"],
    )
    assert battle.extra["category_tag"] == {"math": True}
    vote = {
        "tstamp": 2.0,
        "type": "rightvote",
        "models": ["", ""],
        "ip": "1.2.3.4",
        "states": [
            {"model_name": "x", "offset": 0, "messages": [["USER", "q"], ["ASSISTANT", "ax"]]},
            {"model_name": "y", "offset": 0, "messages": [["USER", "q"], ["ASSISTANT", "ay"]]},
        ],
    }
    log = tmp_path / "2024-08-14-conv.json"
    log.write_text(json.dumps({"type": "chat"}) + "\n" + json.dumps(vote) + "\n")
    [parsed] = load_battles(log)
    assert (parsed.model_a, parsed.model_b, parsed.winner, parsed.anony) == (
        "x",
        "y",
        "model_b",
        True,
    )
    assert parsed.answers("a") == ["ax"]


def test_arena_rate_command(tmp_path: Path) -> None:
    truth = true_ratings(5, seed=3, spread=500)
    battles = simulated_battles(truth, 3_000, seed=4)
    for battle in battles:
        battle.conversation_a = chat("answer " * (5 + hash(battle.question_id) % 20))
        battle.conversation_b = chat("**short** answer")
        battle.extra["language"] = "English" if int(battle.question_id) % 2 else "German"
    source = tmp_path / "clean_battle.json"
    source.write_text(json.dumps([b.to_record() for b in battles]))
    out = tmp_path / "board"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "palestra.cli.main",
            "arena",
            "rate",
            str(source),
            "--out",
            str(out),
            "--rounds",
            "20",
            "--style-control",
            "--by",
            "language",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "| rank | model | rating | 95% CI | battles |" in result.stdout
    assert "## language=German" in result.stdout and "Style coefficients" in result.stdout
    board = json.loads((out / "leaderboard.json").read_text())
    best = f"m{int(np.argmax(truth)):03d}"
    assert board["rows"][0]["model"] == best and board["rows"][0]["rank"] == 1
    assert len(board["win_rate"]) == 5 and board["battle_counts"][0][0] == 0
    assert set(board["style_coefficients"]) == {"length", "headers", "lists", "bold"}
    assert board["meta"]["style_control_skipped_battles"] == 0
    for name in (
        "leaderboard.md",
        "leaderboard.csv",
        "ratings_ci.html",
        "win_rate.html",
        "battle_counts.html",
        "plotly.min.js",
        "language_German/leaderboard.json",
    ):
        assert (out / name).is_file(), name
    if shutil.which("chromium") and importlib.util.find_spec("kaleido"):
        for chart in ("ratings_ci", "win_rate", "battle_counts"):
            assert (out / f"{chart}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "PNG charts skipped" in result.stderr
