"""A battle round's category labels: waited for when the answers are in, taken whenever
the judge answers once the person stopped the replies (the page does not wait)."""

from __future__ import annotations

import asyncio

from palestra.webui.arena_page import Round
from palestra.webui.conversation import Conversation


def a_round() -> Round:
    return Round((Conversation("a"), Conversation("b")), "battle-1")


def test_a_stopped_round_takes_its_labels_when_the_judge_answers() -> None:
    battle = a_round()

    async def stop_then_judge() -> list[list[str]]:
        judging: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        await asyncio.wait_for(battle.label(judging, 0), 1)  # returns before the judge
        seen = [list(battle.categories)]
        judging.set_result(["coding"])
        await asyncio.sleep(0)  # the judge's answer is taken on the next loop turn
        seen.append(list(battle.categories))
        return seen

    assert asyncio.run(stop_then_judge()) == [[], ["coding"]]


def test_an_answered_round_waits_for_the_judge_but_not_for_ever() -> None:
    async def judged(delay: float) -> tuple[list[str], bool]:
        battle = a_round()

        async def judge() -> list[str]:
            await asyncio.sleep(delay)
            return ["math"]

        judging = asyncio.ensure_future(judge())
        await battle.label(judging, 0.5)
        return battle.categories, judging.cancelled()

    assert asyncio.run(judged(0.05)) == (["math"], False)
    assert asyncio.run(judged(5)) == ([], True)  # a slow judge is let go
