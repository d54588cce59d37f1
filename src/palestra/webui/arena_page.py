"""The arena tabs: "Battle", two anonymous models drawn by the matchmaking rules and shown
in random order, and "Side by side", two different models picked by name. The same prompt
streams to both; once both answers are complete the user votes A / B / tie / both bad;
the vote locks the round, highlights the choice and (in a battle) puts the names in the
pane headers; "New round" starts the next one. A reply that fails is a notice, never a
turn: the exchange is taken out of both sides and the message goes back into the box."""

# No `from __future__ import annotations`: Gradio finds the `gr.Request` parameter by its
# annotation at run time.
import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from palestra.arena.battles import BATTLE_VOTES
from palestra.core.errors import InvalidRequestError, PalestraError
from palestra.webui.conversation import Conversation, owns_replies
from palestra.webui.service import ArenaService, Sampling
from palestra.webui.widgets import (
    TAKE_JS,
    images_of,
    message_box,
    notice,
    sampling_controls,
    streaming,
    user_of,
)

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
VOTED_PLACEHOLDER = "You voted: press New round for the next battle"


@dataclass
class Round:
    """One round on the page: the pair of conversations a vote will be about."""

    pair: tuple[Conversation, Conversation]
    battle_id: str
    voted: bool = False
    images: bool = False  # drawn among vision models
    categories: list[str] = field(default_factory=list)  # the category judge's labels

    @property
    def stopped(self) -> bool:
        """Whether the person stopped the replies being written."""
        return any(c.reply_stopped for c in self.pair)

    async def label(self, judging: asyncio.Future[list[str]], wait: float) -> None:
        """Take the category judge's labels: waiting up to `wait` seconds for them (the
        answers are in; the votes open next), or with `wait` 0 (the person stopped the
        replies: the page does not wait) whenever the judge answers."""
        if wait <= 0:
            judging.add_done_callback(self._take_labels)
            return
        try:
            self.categories = await asyncio.wait_for(judging, wait)
        except (TimeoutError, asyncio.CancelledError):
            judging.cancel()  # a slow judge is not waited for

    def _take_labels(self, judging: asyncio.Future[list[str]]) -> None:
        if not judging.cancelled() and judging.exception() is None:
            self.categories = judging.result()


@dataclass
class Panes:
    """The page's round widgets, in the order the handlers return them."""

    state: Any
    chat_a: Any
    chat_b: Any
    box: Any
    reveal: Any
    status: Any
    busy: Any
    votes: list[Any]

    @property
    def outputs(self) -> list[Any]:
        return [self.state, self.chat_a, self.chat_b, self.box, self.reveal, self.status,
                self.busy, *self.votes]  # fmt: skip


def view(
    battle: "Round | None",
    *,
    box: Any = None,
    reveal: Any = None,
    status: Any = None,
    busy: Any = None,
    votes: Any = None,
    labels: bool = False,
    chats: bool = True,
) -> tuple[Any, ...]:
    """The handlers' outputs: the round, both panes (their transcripts unless not `chats`,
    their headers named when `labels`), then what changes (None: unchanged); `votes` is one
    update for every vote button."""
    same = gr.update()
    pair = battle.pair if battle else (Conversation(""), Conversation(""))
    panes = []
    for side, c in zip("AB", pair, strict=True):
        changes: dict[str, Any] = {"value": c.chatbot()} if chats else {}
        if labels:
            changes["label"] = f"Model {side}: {c.model}"
        panes.append(gr.update(**changes))
    vote_updates = [same if votes is None else votes] * len(VOTES)
    return (battle, *panes, same if box is None else box, same if reveal is None else reveal,
            same if status is None else status, same if busy is None else busy,
            *vote_updates)  # fmt: skip


def build_arena_page(
    service: ArenaService, *, anonymous: bool, agreed: Any
) -> tuple[Any, Any, Any, Any]:
    """Returns the two model dropdowns (side-by-side) or None, the battle page's outage
    line (None for side-by-side), and the message box (the terms gate holds it; `agreed`
    is the page's State of whether this browser agreed to the terms)."""
    prefix = "battle" if anonymous else "sbs"
    title = "Battle" if anonymous else "Side by side"
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
                    elem_id=f"{prefix}-model-a", interactive=False,  # until the page load
                )  # fmt: skip
                pick_b = gr.Dropdown(
                    models, value=models[min(1, len(models) - 1)] if models else None,
                    label="Model B", elem_id=f"{prefix}-model-b", interactive=False,
                )  # fmt: skip
        state = gr.State(None)
        with gr.Row(elem_classes="panes"):
            chat_a, chat_b = (
                gr.Chatbot(
                    label=f"Model {side}",
                    height=380,
                    elem_id=f"{prefix}-chatbot-{side.lower()}",
                    feedback_options=(),
                    buttons=["copy"],
                )
                for side in "AB"
            )
        reveal = gr.Markdown(elem_id=f"{prefix}-reveal")
        with gr.Row(elem_classes="vote-row"):
            vote_buttons = [
                gr.Button(label, elem_id=f"{prefix}-{suffix}", interactive=False)
                for label, _, suffix in VOTES
            ]
        box, sent, busy = message_box(  # enabled by the page load's terms check (app.gated)
            prefix, "Type a message for both models and press Enter", False
        )
        status = gr.Markdown(elem_id=f"{prefix}-notice")
        with gr.Row(elem_classes="round-row"):
            new_round = gr.Button("New round", elem_id=f"{prefix}-new-round")
        with gr.Accordion("Parameters", open=False):
            temperature, top_p, max_tokens = sampling_controls()
        panes = Panes(state, chat_a, chat_b, box, reveal, status, busy, vote_buttons)

        def start(images: tuple[str, ...], a: str | None, b: str | None) -> Round:
            if anonymous:
                a, b = service.new_battle(images=bool(images))
            elif not (a and b):
                raise InvalidRequestError("pick two models")
            elif a == b:
                raise InvalidRequestError("pick two different models to compare")
            return Round(
                (Conversation(a or ""), Conversation(b or "")),
                service.battle_id(),
                images=bool(images),
            )

        def models_of(battle: Round) -> tuple[str, str]:
            return battle.pair[0].model, battle.pair[1].model

        def names(battle: Round) -> str:
            a, b = models_of(battle)
            return f"**Model A: {a}** · **Model B: {b}**"

        def hidden(text: str, battle: Round) -> str:
            """An error about an anonymous model, without its name."""
            if not anonymous:
                return text
            for conversation in battle.pair:
                text = text.replace(conversation.model, "this model")
            return text

        async def send(
            message: Any,
            battle: Round | None,
            a: str | None,
            b: str | None,
            t: float,
            p: float,
            n: int,
            terms_agreed: bool,
            request: gr.Request,
        ) -> AsyncIterator[tuple[Any, ...]]:
            if message is None:  # Enter while a reply streamed: the box kept the text
                return
            user = user_of(service, request)
            try:
                if not terms_agreed:
                    raise InvalidRequestError("agree to the terms of use above first")
                text, images = images_of(message)
                if battle is not None and not anonymous and models_of(battle) != (a, b):
                    battle = None  # the models were changed since: a new round
                if battle is not None and battle.voted:
                    raise InvalidRequestError("you voted on this round: press New round")
                fresh = battle is None or (bool(images) and not battle.images)
                if fresh:
                    battle = start(images, a, b)
                assert battle is not None
                service.admit(user, text, list(battle.pair), battle=anonymous, images=images)
            except PalestraError as exc:  # the message goes back into the box, not lost
                yield view(battle, box=message, status=notice(str(exc), "error"))
                return
            first_turn = not battle.pair[0].messages
            for conversation in battle.pair:
                conversation.ask(text, images)
            tickets = (battle.pair[0].begin_reply(), battle.pair[1].begin_reply())
            # The judge labels the round's first prompt while the models answer it.
            judged = first_turn and service.settings.category_judge
            judging = asyncio.ensure_future(service.judge_categories(text)) if judged else None
            shown = "" if anonymous else names(battle)
            locked = gr.update(interactive=False)
            yield view(battle, box=streaming(True), reveal=shown, status="", busy=True,
                       votes=locked, labels=not anonymous)  # fmt: skip
            try:
                sampling = Sampling(t, p, int(n))
                async for _ in service.stream_pair(battle.pair, sampling, user, tickets):
                    yield view(battle)
            finally:
                if judging is not None:
                    await battle.label(
                        judging,
                        0
                        if battle.stopped or not owns_replies(battle.pair, tickets)
                        else JUDGE_WAIT,
                    )
            # Gradio ends an event with its last update again, so a stream that Stop ended
            # ends with what Stop showed, and one a newer stream took over changes nothing.
            if not owns_replies(battle.pair, tickets):
                yield tuple(gr.skip() for _ in panes.outputs)
                return
            if battle.stopped:
                yield stopped_view(battle)
                return
            # The last update names the models again (reveal, labels): a model pick's reset
            # that came late, after this round began, cannot leave them blank.
            again = shown or None
            failed = [(side, c.error) for side, c in zip("AB", battle.pair, strict=True) if c.error]
            if failed:  # the exchange leaves both sides; the question returns to the box
                for conversation in battle.pair:
                    if not conversation.error:
                        conversation.fail("")
                said = "; ".join(f"Model {side}: {hidden(error, battle)}" for side, error in failed)
                back = {"text": text, "files": (message or {}).get("files") or []}
                refused = notice(f"no answer ({said}). Your message is back in the box: send "
                                 "it again or start a new round", "error")  # fmt: skip
                yield view(battle, box=streaming(False, value=back), busy=False, status=refused,
                           reveal=again, labels=not anonymous,
                           votes=gr.update(interactive=bool(battle.pair[0].messages)))  # fmt: skip
                return
            hint = notice("vote for the better answer, or keep chatting", "info")
            yield view(battle, box=streaming(False), status=hint, busy=False, reveal=again,
                       labels=not anonymous, votes=gr.update(interactive=True))  # fmt: skip

        def stopped(battle: Round | None) -> tuple[Any, ...]:
            """Stop: the replies so far stay, marked as stopped; votes open on them."""
            if battle is None:
                return view(battle, box=streaming(False), busy=False)
            for conversation in battle.pair:
                conversation.mark_stopped()
            return stopped_view(battle)

        def stopped_view(battle: Round) -> tuple[Any, ...]:
            answered = all(c.reply for c in battle.pair) and not battle.voted
            return view(battle, box=streaming(False), busy=False,
                        status=notice("stopped; vote, or keep chatting", "info"),
                        votes=gr.update(interactive=answered))  # fmt: skip

        def vote(kind: str) -> Any:
            def record(battle: Round | None, request: gr.Request) -> tuple[Any, ...]:
                if battle is None:
                    return view(battle, status=notice("start a battle first", "error"), chats=False)
                if battle.voted:
                    refused = notice("you already voted on this round", "error")
                    return view(battle, status=refused, chats=False)
                try:
                    service.vote_battle(
                        kind, battle.pair, user_of(service, request),
                        anonymous=anonymous, battle_id=battle.battle_id,
                        categories=battle.categories,
                    )  # fmt: skip
                except PalestraError as exc:
                    return view(battle, status=notice(str(exc), "error"), chats=False)
                battle.voted = True
                label = dict((k, text) for text, k, _ in VOTES)[kind]
                thanks = notice(
                    f"vote recorded: {label}. Thank you; press New round for the next battle",
                    "ok",
                )
                box = gr.update(interactive=False, placeholder=VOTED_PLACEHOLDER)
                base = view(battle, box=box, reveal=names(battle), status=thanks,
                            votes=gr.update(interactive=False), labels=True,
                            chats=False)  # fmt: skip
                chosen = [
                    gr.update(interactive=False, variant="primary", elem_classes=["chosen-vote"])
                    if k == kind
                    else gr.update(interactive=False)
                    for _, k, _ in VOTES
                ]
                return (*base[: -len(VOTES)], *chosen)

            return record

        def clear(notice: Any = "") -> tuple[Any, ...]:
            """A new round: both panes empty, their headers anonymous, votes reset (what is
            typed in the box stays), the notice `notice`."""
            placeholder = "Type a message for both models and press Enter"
            box = streaming(False, interactive=True, placeholder=placeholder)
            fresh = [gr.update(value=[], label="Model A"), gr.update(value=[], label="Model B")]
            reset = gr.update(interactive=False, variant="secondary", elem_classes=[])
            return (None, *fresh, box, "", notice, False, *([reset] * len(VOTES)))

        def leave(battle: Round | None, notice: Any = "") -> tuple[Any, ...]:
            """A new round instead of `battle`, whose replies, if still streaming, end
            first (the way Stop ends them: chat_page.py says why not Gradio's cancel)."""
            if battle is not None:
                for conversation in battle.pair:
                    conversation.end_streams()
            return clear(notice)

        pick_inputs = [pick_a or gr.State(None), pick_b or gr.State(None)]
        # Enter moves the message out of the box in the browser (TAKE_JS), then it is sent.
        sending = box.submit(
            None, [box, busy], [sent, box, status], js=TAKE_JS, trigger_mode="multiple"
        ).then(
            send, [sent, state, *pick_inputs, temperature, top_p, max_tokens, agreed],
            panes.outputs,
            concurrency_limit=None, **service.api_access,
        )  # fmt: skip
        if outages is not None:  # a battle may have found a provider down, or back
            sending.then(service.outage_notice, None, outages, queue=False, **service.api_access)
        # Stop marks the replies and the streams end themselves (chat_page.py says why
        # Gradio's cancel is not used for it).
        box.stop(stopped, [state], panes.outputs, **service.api_access)
        for button, (_, kind, _) in zip(vote_buttons, VOTES, strict=True):
            button.click(vote(kind), [state], panes.outputs, **service.api_access)
        new_round.click(leave, [state], panes.outputs, **service.api_access)
        # Gradio's trash icon on either pane clears the round, not only what is shown.
        for pane in (chat_a, chat_b):
            pane.clear(leave, [state], panes.outputs, **service.api_access)
        if pick_a is not None and pick_b is not None:  # another model: another round

            def picked(battle: Round | None, a: str | None, b: str | None) -> tuple[Any, ...]:
                """The new round a pick starts. The pick's request may reach the server
                after a message sent right after it (they travel apart): a round already
                on these models is that message's, and is left as it is (`send` starts
                a new round itself when the models differ from its round's)."""
                if battle is not None and models_of(battle) == (a, b):
                    return tuple(gr.skip() for _ in panes.outputs)
                return leave(battle, notice=gr.skip())  # the browser has cleared it

            for pick in (pick_a, pick_b):
                # The notice is cleared in the browser, so in the order of what the person
                # did: a refusal of a message sent right after the pick is not wiped.
                pick.input(None, None, [status], js="() => ''").then(
                    picked, [state, pick_a, pick_b], panes.outputs, **service.api_access
                )
    return pick_a, pick_b, outages, box
