"""The arena tabs: "Arena (battle)", two anonymous models drawn by the matchmaking rules
and shown in random order, and "Arena (side-by-side)", two models picked by name. The same
prompt streams to both; the user votes A / B / tie / both bad; an anonymous battle then
reveals the names. The next message after a vote starts a new round."""

# No `from __future__ import annotations`: Gradio finds the `gr.Request` parameter by its
# annotation at run time.
import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from palestra.arena.battles import BATTLE_VOTES
from palestra.core.errors import InvalidRequestError, PalestraError
from palestra.webui.conversation import Conversation
from palestra.webui.service import ArenaService, Sampling
from palestra.webui.widgets import images_of, notice, sampling_controls, take, user_of

# The buttons, by the outcome each vote means (the vote kinds live in arena.battles).
BUTTONS = {
    "model_a": ("A is better", "vote-a"),
    "model_b": ("B is better", "vote-b"),
    "tie": ("Tie", "vote-tie"),
    "tie (bothbad)": ("Both are bad", "vote-bothbad"),
}
JUDGE_WAIT = 10.0  # seconds a category judge may take past the answers
VOTES = tuple(
    (BUTTONS[winner][0], kind, BUTTONS[winner][1]) for kind, winner in BATTLE_VOTES.items()
)


@dataclass
class Round:
    """One round on the page: the pair of conversations a vote will be about."""

    pair: tuple[Conversation, Conversation]
    battle_id: str
    voted: bool = False
    images: bool = False  # drawn among vision models
    categories: list[str] = field(default_factory=list)  # the category judge's labels


def build_arena_page(service: ArenaService, *, anonymous: bool) -> tuple[Any, Any, Any]:
    """Returns the two model dropdowns (side-by-side) or None, and the battle page's
    outage line (None for side-by-side)."""
    prefix = "battle" if anonymous else "sbs"
    title = "Arena (battle)" if anonymous else "Arena (side-by-side)"
    with gr.Tab(title, id=prefix):
        if anonymous:
            gr.Markdown(
                "Ask anything: two anonymous models answer. Vote for the better one and "
                "their names are revealed. Names mentioned in answers do not count."
            )
            outages = gr.Markdown(elem_id=f"{prefix}-outages")
            pick_a = pick_b = None
        else:
            outages = None
            models = service.directory.chat_models()
            with gr.Row():
                pick_a = gr.Dropdown(
                    models, value=models[0] if models else None, label="Model A",
                    elem_id=f"{prefix}-model-a",
                )  # fmt: skip
                pick_b = gr.Dropdown(
                    models, value=models[min(1, len(models) - 1)] if models else None,
                    label="Model B", elem_id=f"{prefix}-model-b",
                )  # fmt: skip
        state = gr.State(None)
        with gr.Row():
            chat_a = gr.Chatbot(label="Model A", height=380, elem_id=f"{prefix}-chatbot-a")
            chat_b = gr.Chatbot(label="Model B", height=380, elem_id=f"{prefix}-chatbot-b")
        reveal = gr.Markdown(elem_id=f"{prefix}-reveal")
        with gr.Row():
            vote_buttons = [
                gr.Button(label, elem_id=f"{prefix}-{suffix}") for label, _, suffix in VOTES
            ]
        with gr.Row():
            textbox = gr.MultimodalTextbox(
                placeholder="Type a message for both models and press Enter",
                file_types=["image"], show_label=False, scale=8, elem_id=f"{prefix}-input",
            )  # fmt: skip
            stop = gr.Button("Stop", variant="stop", scale=1, elem_id=f"{prefix}-stop")
        status = gr.Markdown(elem_id=f"{prefix}-notice")
        new_round = gr.Button("New round", elem_id=f"{prefix}-new-round")
        with gr.Accordion("Parameters", open=False):
            temperature, top_p, max_tokens = sampling_controls()

        def start(images: tuple[str, ...], a: str | None, b: str | None) -> Round:
            if anonymous:
                a, b = service.new_battle(images=bool(images))
            elif not (a and b):
                raise InvalidRequestError("pick two models")
            return Round(
                (Conversation(a or ""), Conversation(b or "")),
                service.battle_id(),
                images=bool(images),
            )

        def names(battle: Round) -> str:
            a, b = battle.pair[0].model, battle.pair[1].model
            return f"**Model A: {a}** · **Model B: {b}**"

        async def send(
            message: Any,
            battle: Round | None,
            a: str | None,
            b: str | None,
            t: float,
            p: float,
            n: int,
            request: gr.Request,
        ) -> AsyncIterator[tuple[Any, ...]]:
            user = user_of(service, request)
            try:
                text, images = images_of(message)
                fresh = (
                    battle is None
                    or battle.voted
                    or (bool(images) and not battle.images)
                    or (not anonymous and (battle.pair[0].model, battle.pair[1].model) != (a, b))
                )
                if fresh:
                    battle = start(images, a, b)
                assert battle is not None
                service.admit(user, text, list(battle.pair), battle=anonymous, images=images)
            except PalestraError as exc:  # the message goes back into the box, not lost
                keep = battle.pair if battle else (Conversation(""), Conversation(""))
                yield (
                    battle,
                    keep[0].chatbot(),
                    keep[1].chatbot(),
                    message,
                    gr.update(),
                    notice(str(exc), "error"),
                )
                return
            first_turn = not battle.pair[0].messages
            for conversation in battle.pair:
                conversation.ask(text, images)
            # The judge labels the round's first prompt while the models answer it.
            judged = first_turn and service.settings.category_judge
            judging = asyncio.ensure_future(service.judge_categories(text)) if judged else None
            shown = "" if anonymous else names(battle)
            yield battle, battle.pair[0].chatbot(), battle.pair[1].chatbot(), gr.update(), shown, ""
            try:
                async for _ in service.stream_pair(battle.pair, Sampling(t, p, int(n)), user):
                    yield (battle, battle.pair[0].chatbot(), battle.pair[1].chatbot(),
                           gr.update(), gr.update(), "")  # fmt: skip
            finally:
                if judging is not None:
                    try:
                        battle.categories = await asyncio.wait_for(judging, JUDGE_WAIT)
                    except (TimeoutError, asyncio.CancelledError):
                        judging.cancel()  # a slow judge is not waited for
            hint = notice("vote for the better answer, or keep chatting", "info")
            yield (battle, battle.pair[0].chatbot(), battle.pair[1].chatbot(), gr.update(),
                   gr.update(), hint)  # fmt: skip

        def vote(kind: str) -> Any:
            def record(battle: Round | None, request: gr.Request) -> tuple[Any, ...]:
                if battle is None:
                    return battle, gr.update(), notice("start a battle first", "error")
                if battle.voted:
                    return (
                        battle,
                        gr.update(),
                        notice("already voted; send a message for a new round", "error"),
                    )
                try:
                    number = service.vote_battle(
                        kind, battle.pair, user_of(service, request),
                        anonymous=anonymous, battle_id=battle.battle_id,
                        categories=battle.categories,
                    )  # fmt: skip
                except PalestraError as exc:
                    return battle, gr.update(), notice(str(exc), "error")
                battle.voted = True
                return (
                    battle,
                    names(battle),
                    notice(
                        f"vote recorded (#{number}); thank you. A new message starts a new round",
                        "ok",
                    ),
                )

            return record

        def clear() -> tuple[Any, ...]:
            return None, [], [], None, "", ""

        sent = gr.State(None)  # the message just taken out of the box
        inputs = [sent, state, pick_a or gr.State(None), pick_b or gr.State(None)]
        outputs = [state, chat_a, chat_b, textbox, reveal, status]
        # The box is emptied by a quick event of its own before the replies start (a
        # stream's first update could be merged away, leaving the sent message in the box).
        sending = textbox.submit(take, [textbox], [sent, textbox], queue=False).then(
            send, [*inputs, temperature, top_p, max_tokens], outputs, concurrency_limit=None
        )
        if outages is not None:  # a battle may have found a provider down, or back
            sending.then(service.outage_notice, None, outages, queue=False)
        stop.click(None, cancels=[sending])
        for button, (_, kind, _) in zip(vote_buttons, VOTES, strict=True):
            button.click(vote(kind), [state], [state, reveal, status])
        new_round.click(clear, None, outputs, cancels=[sending])
    return pick_a, pick_b, outages
