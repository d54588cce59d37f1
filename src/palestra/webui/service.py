"""`ArenaService`: what the web UI's pages do, without the widgets.

It admits a message (limits, rate limit, moderation), streams a model's reply into a
`Conversation` (two at once for a battle), logs each finished or stopped reply as a `chat`
event, records votes (identity leaks flagged for cleaning) and computes the leaderboard
from the store. A failure of one model's request becomes an error line in that reply; it
never ends the page's session or the server.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from palestra.arena.cleaning import identity_leaks
from palestra.arena.live_board import LiveBoard
from palestra.arena.matchmaking import MatchmakingConfig, draw_pair
from palestra.arena.pipeline import RatedBattles
from palestra.arena.settings import CleaningOptions, RatingOptions
from palestra.arena.store import ArenaEvent, ArenaStore
from palestra.core.errors import InvalidRequestError, OverloadedError, PalestraError
from palestra.core.types import Conversation as Chat
from palestra.core.types import GenerationRequest, Message, SamplingParams
from palestra.webui.conversation import Conversation, owns_replies
from palestra.webui.models import ModelDirectory, ModelEntry
from palestra.webui.render import user_error
from palestra.webui.safety import Moderator, RateLimiter
from palestra.webui.settings import WebUISettings
from palestra.webui.stoppable import until_ended

logger = logging.getLogger(__name__)


@dataclass
class Sampling:
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 512


def client_address(host: str | None, headers: Mapping[str, str]) -> str:
    """The user's address as FastChat takes it: Cloudflare's header, then the first
    X-Forwarded-For hop, then the socket."""
    forwarded = headers.get("x-forwarded-for", "")
    return headers.get("cf-connecting-ip") or forwarded.split(",")[0].strip() or host or ""


class ArenaService:
    def __init__(
        self,
        directory: ModelDirectory,
        store: ArenaStore,
        matchmaking: MatchmakingConfig | None = None,
        moderator: Moderator | None = None,
        rate_limiter: RateLimiter | None = None,
        vote_limiter: RateLimiter | None = None,
        settings: WebUISettings | None = None,
        rating: RatingOptions | None = None,
        cleaning: CleaningOptions | None = None,
    ):
        self.directory = directory
        self.store = store
        self.matchmaking = matchmaking or MatchmakingConfig()
        self.moderator = moderator
        self.rate_limiter = rate_limiter
        self.vote_limiter = vote_limiter
        self.settings = settings or WebUISettings()
        self.rating = rating or RatingOptions()
        self.cleaning = cleaning or CleaningOptions()
        self.board = LiveBoard(store, self.rating, self.cleaning)

    @property
    def api_access(self) -> dict[str, Any]:
        """How the page's handlers are exposed: private (not on Gradio's API page, not
        callable by its clients: votes and messages come from the page, where a person
        is) unless `--gradio-api` opens them for load tests and automation."""
        return {"api_visibility": "public" if self.settings.gradio_api else "private"}

    def browser_state(self, default: Any, key: str) -> Any:
        """A value kept in the browser (Gradio's BrowserState), encrypted with a secret
        derived from the store's salt: readable by every web server on the store and after
        a restart (Gradio's default secret is new at each start, which loses it)."""
        import gradio as gr

        return gr.BrowserState(
            default, storage_key=key, secret=self.store.derived_secret(f"browser:{key}")
        )

    def terms(self) -> str:
        """The terms of use a browser agrees to before its first battle ("" for none)."""
        path = self.settings.terms_file
        if path is None:
            return ""
        if not path.is_file():
            raise InvalidRequestError(f"terms of use file {str(path)!r} does not exist")
        return path.read_text("utf-8").strip()

    def user(self, host: str | None, headers: Mapping[str, str]) -> str:
        return self.store.hash_user(client_address(host, headers))

    # ---------------------------------------------------------------- admission
    def admit(
        self,
        user: str,
        text: str,
        conversations: list[Conversation],
        *,
        battle: bool,
        images: tuple[str, ...] = (),
    ) -> None:
        """Refuse, with a message for the user, what must not reach a model."""
        for conversation in conversations:
            conversation.check_input(text, self.settings.max_input_chars, self.settings.max_turns)
            if images and not self.directory.get(conversation.model).vision:
                raise InvalidRequestError(
                    f"{conversation.model if not battle else 'this model'} does not accept "
                    "images; pick a vision model or send text only"
                )
        if self.moderator is not None and (battle or self.settings.moderate_everywhere):
            verdict = self.moderator.check(text)
            if verdict.flagged:
                raise InvalidRequestError(f"your message was not sent: {verdict.reason}")
        if self.rate_limiter is not None:
            wait = self.rate_limiter.allow(user)
            if wait:
                raise OverloadedError(
                    f"you are sending messages too fast; try again in {wait:.0f} s"
                )

    # ---------------------------------------------------------------- streaming
    @staticmethod
    def _sampling(entry: ModelEntry, sampling: Sampling) -> SamplingParams:
        """The page's sampling, overridden by an endpoint's recommended_config."""
        recommended = entry.recommended
        return SamplingParams(
            temperature=float(recommended.get("temperature", sampling.temperature)),
            top_p=float(recommended.get("top_p", sampling.top_p)),
            max_tokens=int(recommended.get("max_new_tokens", sampling.max_tokens)),
        )

    async def stream(
        self,
        conversation: Conversation,
        sampling: Sampling,
        user: str,
        ticket: int | None = None,
    ) -> AsyncIterator[str]:
        """The reply so far, after each chunk; logged as a chat event when it ends. A reply
        that fails is logged, then taken out of the conversation with its question
        (`Conversation.fail`: `conversation.error` says why, without internal addresses).

        `ticket` (from `conversation.begin_reply`; a new one when not given) binds the
        stream to its reply: it ends, without waiting for the model's next chunk, once the
        reply is stopped or a newer stream took the conversation over, and it never writes
        into a reply that is not its own."""
        ticket = conversation.begin_reply() if ticket is None else ticket
        entry = self.directory.get(conversation.model)
        params = self._sampling(entry, sampling)
        messages = conversation.prompt_messages()
        if not entry.system_prompt:
            messages = [m for m in messages if m.role != "system"]
        started, text, outcome = time.time(), "", "stopped"
        conversation.error = ""
        error: BaseException | None = None

        def ended() -> bool:
            return not conversation.writes(ticket)

        try:
            params = await self._fit_output(entry, messages, params)
            request = GenerationRequest(sampling=params, conversation=Chat(tuple(messages)))
            async for chunk in until_ended(entry.backend.generate(request), ended):
                if chunk.text:  # the last chunk (usage only) changes nothing on the page
                    text += chunk.text
                    conversation.set_reply(text)
                    yield text
            outcome = "stopped" if ended() else "finished"
        except Exception as exc:  # one request's failure never ends the session
            if not isinstance(exc, PalestraError):
                logger.exception("%s failed to answer", conversation.model)
            error, outcome = exc, "error"
        finally:
            if conversation.owns_reply(ticket):  # Stop keeps the reply as it was shown
                conversation.set_reply(text)
            self._log_chat(conversation, params, started, user, outcome)
        if error is not None and conversation.owns_reply(ticket):
            conversation.fail(user_error(error, conversation.model))

    async def _fit_output(
        self, entry: ModelEntry, messages: list[Message], params: SamplingParams
    ) -> SamplingParams:
        """The output cap within what the model's context leaves after the prompt (asked of
        the serving API's /tokenize; hosted models keep the page's cap)."""
        budget = await self.directory.context_left(entry, messages)
        if budget is None or params.max_tokens <= budget:
            return params
        if budget < 1:
            raise InvalidRequestError(
                "this conversation fills the model's context; start a new one to go on"
            )
        return replace(params, max_tokens=budget)

    def _log_chat(
        self,
        conversation: Conversation,
        params: SamplingParams,
        started: float,
        user: str,
        outcome: str,
    ) -> None:
        self.store.record(
            ArenaEvent(
                type="chat",
                user=user,
                models=[conversation.model],
                states=[conversation.state()],
                shown=[conversation.model],
                gen_params={
                    "temperature": params.temperature,
                    "top_p": params.top_p,
                    "max_new_tokens": params.max_tokens,
                },
                start=started,
                finish=time.time(),
                flags={} if outcome == "finished" else {"outcome": outcome},
            )
        )

    async def stream_pair(
        self,
        pair: tuple[Conversation, Conversation],
        sampling: Sampling,
        user: str,
        tickets: tuple[int, int] | None = None,
    ) -> AsyncIterator[tuple[str, str]]:
        """Both replies so far, whenever either grows (`tickets`: as for `stream`)."""
        texts = ["", ""]
        queue: asyncio.Queue[tuple[int, str] | None] = asyncio.Queue()
        tickets = tickets or (pair[0].begin_reply(), pair[1].begin_reply())

        async def pump(side: int) -> None:
            try:
                async for text in self.stream(pair[side], sampling, user, tickets[side]):
                    await queue.put((side, text))
            finally:
                await queue.put(None)

        tasks = [asyncio.create_task(pump(0)), asyncio.create_task(pump(1))]
        try:
            running = 2
            while running:
                item = await queue.get()
                if item is None:
                    running -= 1
                    continue
                if not owns_replies(pair, tickets):
                    continue  # the page left the round: what was queued is not shown
                texts[item[0]] = item[1]
                yield texts[0], texts[1]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # ---------------------------------------------------------------- categories
    async def judge_categories(self, prompt: str) -> list[str]:
        """The `--category-judge` model's categories for a battle's first prompt (the
        topics of `arena.categories`); none without a judge, or when it fails: a vote
        never waits on a judge's trouble."""
        from palestra.arena.categories import JUDGED, judge_prompt, parse_judged

        judge = self.settings.category_judge
        if not judge:
            return []
        request = GenerationRequest(
            sampling=SamplingParams(temperature=0.0, max_tokens=48),
            conversation=Chat((Message("user", judge_prompt(prompt)),)),
        )
        reply = ""
        try:
            chunks = self.directory.get(judge).backend.generate(request)
            async for chunk in chunks:
                reply += chunk.text
        except Exception as exc:  # a judge down or gone leaves the rules' labels
            logger.warning("category judge %s failed: %s", judge, exc)
            return []
        labels = parse_judged(reply)
        assert set(labels) <= set(JUDGED)
        return labels

    # ---------------------------------------------------------------- battles and votes
    def new_battle(self, images: bool = False) -> tuple[str, str]:
        models = self.directory.battle_models(vision=images)
        return draw_pair(models, self.matchmaking)

    def outage_notice(self) -> str:
        """The battle page's line about models left out because they do not answer."""
        down = self.directory.outages()
        if not down:
            return ""
        items = [
            f"**{name}** (not answering since "
            f"{time.strftime('%H:%M UTC', time.gmtime(outage.down_at))}: "
            f"{user_error(outage.last_error)[:160]})"
            for name, outage in down.items()
        ]
        return "Left out of battles until they answer again: " + "; ".join(items)

    def _count_vote(self, user: str) -> None:
        if self.vote_limiter is not None:
            wait = self.vote_limiter.allow(user)
            if wait:
                raise OverloadedError(
                    f"you have voted {self.vote_limiter.limit} times in "
                    f"{self.vote_limiter.window:.0f} s, the most this arena counts; "
                    f"vote again in {wait:.0f} s"
                )

    def feedback(self, kind: str | None, conversation: Conversation, reply: int, user: str) -> int:
        """A reply's feedback (upvote, downvote or flag; None withdraws it): one per reply,
        which a later one replaces. Each is stored as an event naming the reply and the
        event it replaces, so the log keeps what was said and the last word counts."""
        if not (0 <= reply < len(conversation.messages)) or (
            conversation.messages[reply].role != "assistant"
            or not conversation.messages[reply].content
        ):
            raise InvalidRequestError("only a model's finished reply takes feedback")
        previous = conversation.feedback.get(reply)
        if previous is not None and previous[0] == kind:
            return previous[1]
        if kind is None and previous is None:
            return 0
        self._count_vote(user)
        flags: dict[str, Any] = {"reply": reply}
        if previous is not None:
            flags["replaces"] = previous[1]
        if kind is None:  # stored as the withdrawn kind, marked withdrawn
            assert previous is not None
            flags["withdrawn"] = True
        state = conversation.state()
        state["messages"] = state["messages"][: reply + 1]  # what was seen when voting
        number = self.store.record(
            ArenaEvent(
                type=kind or previous[0],  # type: ignore[index]
                user=user,
                models=[conversation.model],
                states=[state],
                shown=[conversation.model],
                flags=flags,
            )
        )
        if kind is None:
            conversation.feedback.pop(reply, None)
        else:
            conversation.feedback[reply] = (kind, number)
        return number

    def vote_battle(
        self,
        kind: str,
        pair: tuple[Conversation, Conversation],
        user: str,
        *,
        anonymous: bool,
        battle_id: str,
        categories: list[str] | None = None,
    ) -> int:
        """Store a battle vote; `categories`: a judge model's labels for its prompt."""
        if not (pair[0].reply and pair[1].reply):
            raise InvalidRequestError("wait for both answers, then vote")
        if pair[0].model == pair[1].model:
            raise InvalidRequestError("a vote needs two different models")
        self._count_vote(user)
        names = (pair[0].model, pair[1].model)
        leaks = sorted(
            {w for c in pair for m in c.messages if m.role == "assistant"
             for w in identity_leaks(m.content, names)}
        )  # fmt: skip
        flags: dict[str, Any] = {"identity_leak": leaks} if leaks else {}
        if categories:
            flags["categories"] = list(categories)
            flags["category_judge"] = self.settings.category_judge
        return self.store.record(
            ArenaEvent(
                type=kind,
                user=user,
                models=list(names),
                states=[pair[0].state(), pair[1].state()],
                shown=["", ""] if anonymous else list(names),
                battle_id=battle_id,
                flags=flags,
            )
        )

    @staticmethod
    def battle_id() -> str:
        return uuid.uuid4().hex

    # ---------------------------------------------------------------- leaderboard
    def leaderboard(self, category: str | None = None, style: bool = False) -> RatedBattles:
        """The store's battles through the arena pipeline (the same cleaning and rating as
        `palestra arena rate --where categories=CATEGORY [--style-control]`), kept up to
        date by `LiveBoard`."""
        return self.board.current(category, style)
