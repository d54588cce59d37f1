"""The web UI's service layer with scripted models: admission (limits, images, moderation
in battles, rate limits), streaming with a failing model, battles, votes, leaderboard."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from palestra.arena.store import ArenaStore
from palestra.backends.scripted import ScriptedBackend
from palestra.core.errors import InvalidRequestError, OverloadedError
from palestra.core.types import GenerationChunk, GenerationRequest
from palestra.webui.conversation import Conversation
from palestra.webui.models import ModelDirectory, ModelEntry
from palestra.webui.safety import KeywordModerator, RateLimiter
from palestra.webui.service import ArenaService, Sampling, client_address
from palestra.webui.settings import WebUISettings
from tests.integration.cluster import CLI


class Failing(ScriptedBackend):
    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        yield GenerationChunk(text="partial")
        raise RuntimeError("the model crashed")


def service(tmp_path: Path, **options) -> ArenaService:  # type: ignore[no-untyped-def]
    entries = [
        ModelEntry("alpha", ScriptedBackend(["I am alpha, made by nobody."], "alpha"), "test"),
        ModelEntry("beta", ScriptedBackend(["Plain answer."], "beta", vision=True), "test"),
        ModelEntry("gamma", ScriptedBackend(["Another answer."], "gamma"), "test"),
        ModelEntry("broken", Failing(), "test"),
    ]
    return ArenaService(ModelDirectory.of(entries), ArenaStore(tmp_path / "s.db"), **options)


def collect(stream: AsyncIterator) -> list:  # type: ignore[type-arg]
    async def run() -> list:  # type: ignore[type-arg]
        return [item async for item in stream]

    return asyncio.run(run())


def test_admission_rules(tmp_path: Path) -> None:
    moderator = KeywordModerator(["forbidden"])
    svc = service(
        tmp_path,
        moderator=moderator,
        settings=WebUISettings(max_input_chars=20, max_turns=1),
    )
    svc.rate_limiter = RateLimiter(svc.store, 3, 60)
    chat = Conversation("alpha")
    svc.admit("u1", "forbidden words", [chat], battle=False)  # chat is not moderated
    with pytest.raises(InvalidRequestError, match="blocked word"):
        svc.admit("u1", "forbidden words", [Conversation("alpha")], battle=True)
    with pytest.raises(InvalidRequestError, match="limit is 20"):
        svc.admit("u2", "x" * 21, [chat], battle=False)
    with pytest.raises(InvalidRequestError, match="does not accept images"):
        svc.admit("u2", "look", [chat], battle=False, images=("data:image/png;base64,AA==",))
    svc.admit("u2", "look", [Conversation("beta")], battle=False, images=("data:,",))
    chat.ask("first")
    with pytest.raises(InvalidRequestError, match="1-turn limit"):
        svc.admit("u2", "again", [chat], battle=False)
    for _ in range(2):  # u1's second and third message in the window (refused ones not counted)
        svc.admit("u1", "hello", [Conversation("alpha")], battle=False)
    with pytest.raises(OverloadedError, match="too fast"):
        svc.admit("u1", "hello", [Conversation("alpha")], battle=False)
    svc.admit("u3", "hello", [Conversation("alpha")], battle=False)  # others are not limited
    everywhere = service(
        tmp_path / "2", moderator=moderator, settings=WebUISettings(moderate_everywhere=True)
    )
    with pytest.raises(InvalidRequestError, match="blocked word"):
        everywhere.admit("u", "forbidden", [Conversation("alpha")], battle=False)


def test_a_crashing_model_ends_its_reply_not_the_service(tmp_path: Path) -> None:
    """A failed reply is logged, then taken out with its question: an error is a notice
    (conversation.error), never a turn sent back to the model."""
    svc = service(tmp_path)
    broken = Conversation("broken")
    broken.ask("earlier")
    broken.set_reply("an earlier answer")
    broken.ask("hi")
    texts = collect(svc.stream(broken, Sampling(), "u"))
    assert texts == ["partial"]
    assert broken.error == "broken could not answer: the model crashed"
    assert [m.content for m in broken.messages] == ["earlier", "an earlier answer"]
    fine = Conversation("alpha")
    fine.ask("hi")
    assert collect(svc.stream(fine, Sampling(), "u"))[-1] == "I am alpha, made by nobody."
    logged = list(svc.store.events_of("chat"))
    assert [e.flags.get("outcome") for e in logged] == ["error", None]
    assert logged[0].states[0]["messages"][-1] == ["assistant", "partial"]  # as it happened
    assert logged[1].states[0]["messages"] == [["user", "hi"], ["assistant", fine.reply]]


def test_battle_stream_vote_and_leaderboard(tmp_path: Path) -> None:
    svc = service(tmp_path)
    assert svc.leaderboard().board is None
    pair = (Conversation("alpha"), Conversation("beta"))
    with pytest.raises(InvalidRequestError, match="wait for both answers"):
        svc.vote_battle("leftvote", pair, "u", anonymous=True, battle_id="b1")
    for conversation in pair:
        conversation.ask("Who are you?")
    updates = collect(svc.stream_pair(pair, Sampling(), "u"))
    assert updates[-1] == ("I am alpha, made by nobody.", "Plain answer.")
    svc.vote_battle("leftvote", pair, "u", anonymous=True, battle_id="b1")
    (vote,) = svc.store.events_of("leftvote")
    assert vote.shown == ["", ""] and vote.models == ["alpha", "beta"]
    assert vote.flags == {"identity_leak": ["alpha"]}  # alpha named itself
    # The Leaderboard cleans as `palestra arena rate` does: a vote that saw a name is out.
    leaked = svc.board.refresh()  # at once (pages get it from a background refresh)
    assert leaked.board is None and (leaked.total, leaked.kept) == (1, 0)
    assert "identity leaks: 1" in leaked.summary()
    fair = (Conversation("beta"), Conversation("gamma"))
    for conversation in fair:
        conversation.ask("Name a color.")
    collect(svc.stream_pair(fair, Sampling(), "u"))
    svc.vote_battle("rightvote", fair, "u", anonymous=True, battle_id="b2")
    result = svc.board.refresh()
    assert [r.model for r in result.board.rows] == ["gamma", "beta"]
    assert (result.total, result.kept) == (2, 1) and "anonymous battles only" in result.filters
    assert svc.board.refresh() is result  # no new vote: not recomputed


def test_new_battles_follow_matchmaking(tmp_path: Path) -> None:
    svc = service(tmp_path)
    for _ in range(20):
        a, b = svc.new_battle()
        assert a != b and {a, b} <= {"alpha", "beta", "gamma", "broken"}
    with pytest.raises(Exception, match="no model may battle"):
        svc.new_battle(images=True)  # only beta accepts images


def test_client_address() -> None:
    assert client_address("10.0.0.1", {}) == "10.0.0.1"
    assert client_address("10.0.0.1", {"x-forwarded-for": "1.2.3.4, 10.0.0.1"}) == "1.2.3.4"
    assert client_address("h", {"cf-connecting-ip": "5.6.7.8", "x-forwarded-for": "1.2.3.4"}) == (
        "5.6.7.8"
    )


def test_battles_with_images_draw_vision_models(tmp_path: Path) -> None:
    entries = [
        ModelEntry(name, ScriptedBackend([f"{name} sees it"], name, vision=vision), "test")
        for name, vision in (("text-a", False), ("eye-1", True), ("eye-2", True))
    ]
    svc = ArenaService(ModelDirectory.of(entries), ArenaStore(tmp_path / "v.db"))
    for _ in range(10):
        assert set(svc.new_battle(images=True)) == {"eye-1", "eye-2"}
    pair = (Conversation("eye-1"), Conversation("eye-2"))
    svc.admit("u", "what is this?", list(pair), battle=True, images=("data:image/png;base64,AA",))
    for conversation in pair:
        conversation.ask("what is this?", ("data:image/png;base64,AA",))
    assert collect(svc.stream_pair(pair, Sampling(), "u"))[-1] == ("eye-1 sees it", "eye-2 sees it")
    sent = entries[1].backend.requests[-1].conversation.messages  # type: ignore[attr-defined]
    assert sent[-1].images == ("data:image/png;base64,AA",)
    logged = list(svc.store.events_of("chat"))[-1].states[0]["messages"][0]
    assert logged[0] == "user" and logged[1][0] == "what is this?"
    assert len(logged[1][1][0]) == 64  # the image is logged as its SHA-256, not stored


def test_a_provider_that_stops_answering_leaves_battles_and_comes_back(tmp_path: Path) -> None:
    """Hosted models from an endpoint file, against the OpenAI stand-in: one that answers
    503 is left out of battles once it has failed twice (the page says so), is tried again
    by one battle after `retry_seconds`, and returns when it answers. A hosted model is sent
    the chat's system prompt only with `custom_system_prompt`."""
    from palestra.backends.remote import RemoteEndpoint
    from tests.fakes.openai_server import build_openai_app
    from tests.fakes.server import serve_in_thread

    app = build_openai_app()
    with serve_in_thread(app) as url:
        base = url + "/v1"
        endpoints = [
            RemoteEndpoint("steady", model_id="scripted", api_base=base),
            RemoteEndpoint("chatty", model_id="scripted", api_base=base, custom_system_prompt=True),
            RemoteEndpoint("flaky", model_id="dead", api_base=base, retries=0),
        ]
        svc = ArenaService(ModelDirectory(None, endpoints), ArenaStore(tmp_path / "o.db"))
        assert svc.outage_notice() == ""
        loop = asyncio.new_event_loop()

        def ask(model: str) -> str:
            conversation = Conversation(model, system="Answer in French.")
            conversation.ask("Hi")
            texts = loop.run_until_complete(_all(svc.stream(conversation, Sampling(), "u")))
            return conversation.error or texts[-1]

        for _ in range(2):
            failed = ask("flaky")
            assert failed.startswith("flaky could not answer:") and "overloaded" in failed
            assert "127.0.0.1" not in failed and "http" not in failed  # no internal address
        assert {m for _ in range(20) for m in svc.new_battle()} == {"steady", "chatty"}
        notice = svc.outage_notice()
        assert notice.startswith("Left out of battles until they answer again: **flaky**")
        assert "overloaded" in notice and "http" not in notice  # no internal address

        outage = svc.directory.get("flaky").outage
        assert outage is not None
        outage.retry_seconds = 0  # its turn to be tried again comes at once
        assert "flaky" in svc.directory.battle_models()
        outage.answered()  # what a battle's answer does
        assert svc.outage_notice() == ""

        assert ask("steady") == "Scripted scripted heard: Hi"
        assert [m["role"] for m in app.state.bodies[-1]["messages"]] == ["user"]
        ask("chatty")
        assert [m["role"] for m in app.state.bodies[-1]["messages"]] == ["system", "user"]
        loop.close()


async def _all(stream: AsyncIterator[str]) -> list[str]:
    return [text async for text in stream]


def test_a_category_judge_labels_the_battle_it_sees(tmp_path: Path) -> None:
    """The judge's labels join the rules' in the stored facts; a failing judge leaves the
    rules' labels and the vote is stored all the same."""
    judge = ModelEntry("judge", ScriptedBackend(["Categories: coding, creative writing."]), "")
    entries = [
        ModelEntry("alpha", ScriptedBackend(["One answer."], "alpha"), "test"),
        ModelEntry("beta", ScriptedBackend(["Another answer."], "beta"), "test"),
        judge,
        ModelEntry("down", Failing(), "test"),
    ]
    svc = ArenaService(
        ModelDirectory.of(entries), ArenaStore(tmp_path / "j.db"),
        settings=WebUISettings(category_judge="judge"),
    )  # fmt: skip
    prompt = "Tell me something nice about my tortoise."
    labels = asyncio.run(svc.judge_categories(prompt))
    assert labels == ["coding", "creative_writing"]
    assert "Tell me something nice" in judge.backend.requests[-1].conversation.messages[0].content
    pair = (Conversation("alpha"), Conversation("beta"))
    for conversation in pair:
        conversation.ask(prompt)
    collect(svc.stream_pair(pair, Sampling(), "u"))
    svc.vote_battle("leftvote", pair, "u", anonymous=True, battle_id="b", categories=labels)
    (facts,), _ = svc.store.battle_facts()
    assert facts.extra["categories"] == ["coding", "creative_writing", "english"]
    (vote,) = svc.store.events_of("leftvote")
    assert vote.flags["category_judge"] == "judge"

    svc.settings = WebUISettings(category_judge="down")
    assert asyncio.run(svc.judge_categories(prompt)) == []


def test_one_changeable_feedback_per_reply(tmp_path: Path) -> None:
    """Like, then dislike, then withdraw: each is stored with the event it replaces; the
    same feedback twice is stored once; a question or an unfinished reply takes none."""
    svc = service(tmp_path)
    chat = Conversation("alpha")
    chat.ask("Who are you?")
    collect(svc.stream(chat, Sampling(), "u"))
    with pytest.raises(InvalidRequestError, match="finished reply"):
        svc.feedback("upvote", chat, 0, "u")
    liked = svc.feedback("upvote", chat, 1, "u")
    assert svc.feedback("upvote", chat, 1, "u") == liked  # no second vote
    disliked = svc.feedback("downvote", chat, 1, "u")
    svc.feedback(None, chat, 1, "u")
    assert svc.feedback(None, chat, 1, "u") == 0 and chat.feedback == {}
    ups, downs = list(svc.store.events_of("upvote")), list(svc.store.events_of("downvote"))
    assert len(ups) == 1 and ups[0].flags == {"reply": 1}
    assert [d.flags for d in downs] == [
        {"reply": 1, "replaces": liked},
        {"reply": 1, "replaces": disliked, "withdrawn": True},
    ]
    assert downs[0].states[0]["messages"][-1] == ["assistant", "I am alpha, made by nobody."]


def test_a_vote_needs_two_different_models(tmp_path: Path) -> None:
    svc = service(tmp_path)
    pair = (Conversation("alpha"), Conversation("alpha"))
    for conversation in pair:
        conversation.ask("hi")
    collect(svc.stream_pair(pair, Sampling(), "u"))
    with pytest.raises(InvalidRequestError, match="two different models"):
        svc.vote_battle("tievote", pair, "u", anonymous=False, battle_id="b")
    assert list(svc.store.events_of("tievote")) == []


def test_output_caps_follow_the_models_context(tmp_path: Path) -> None:
    """A served model is asked for at most what its context leaves after the prompt (the
    serving API's /tokenize counts it); a full context is a clear notice."""
    from fastapi import FastAPI

    from tests.fakes.server import serve_in_thread

    api = FastAPI()
    api.get("/health")(lambda: {})

    @api.post("/tokenize")
    def tokenize(body: dict) -> dict:  # type: ignore[type-arg]
        words = sum(len(m["content"].split()) for m in body["messages"])
        return {"tokens": [], "count": words, "max_model_len": 12}

    with serve_in_thread(api) as url:
        backend = ScriptedBackend([" ".join(["word"] * 40)], "alpha")
        entry = ModelEntry("alpha", backend, "test", served=True)
        directory = ModelDirectory.of([entry])
        directory.api_base = url + "/v1"
        svc = ArenaService(directory, ArenaStore(tmp_path / "c.db"))
        chat = Conversation("alpha")
        chat.ask("one two three four five")
        collect(svc.stream(chat, Sampling(max_tokens=2048), "u"))
        assert backend.requests[-1].sampling.max_tokens == 7 and chat.error == ""
        chat.ask(" ".join(["more"] * 12))
        collect(svc.stream(chat, Sampling(max_tokens=2048), "u"))
        assert "fills the model's context" in chat.error and len(chat.messages) == 2


def test_the_user_salt_lives_outside_the_store(tmp_path: Path) -> None:
    from palestra.webui.settings import build_service

    salt = tmp_path / "salt"
    salt.write_text("0123456789abcdef0123\n")
    outside = build_service(WebUISettings(store=str(tmp_path / "a.db"), user_salt_file=salt))
    assert outside.store.salt_source == "given" and outside.store.stored_salt() is None
    inside = ArenaStore(tmp_path / "b.db")
    assert inside.salt_source == "store" and inside.stored_salt() is not None
    user = inside.hash_user("10.0.0.1")
    moved = subprocess.run(
        [*CLI, "arena", "salt", str(tmp_path / "b.db"), "--remove"], capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert moved.returncode == 0 and ArenaStore(tmp_path / "b.db", salt="x").stored_salt() is None
    (tmp_path / "moved").write_text(moved.stdout)
    kept = build_service(
        WebUISettings(store=str(tmp_path / "b.db"), user_salt_file=tmp_path / "moved")
    )
    assert kept.store.hash_user("10.0.0.1") == user  # the same users after the move
    again = subprocess.run([*CLI, "arena", "salt", str(tmp_path / "b.db")], capture_output=True,
                           text=True, timeout=120)  # fmt: skip
    assert again.returncode == 2 and "keeps no user salt" in again.stderr
    short = tmp_path / "short"
    short.write_text("abc\n")
    with pytest.raises(InvalidRequestError, match="at least 16 characters"):
        build_service(WebUISettings(store=str(tmp_path / "c.db"), user_salt_file=short))


def test_stop_ends_the_reply_where_the_page_showed_it(tmp_path: Path) -> None:
    """Stop marks the reply while its stream still runs (the page does not cancel the
    stream): the stream ends without taking another chunk, the model's generation is
    closed, and the reply is logged as stopped with the text shown."""
    closed_after: list[int] = []  # chunks the model had written when its stream closed

    class Watched(ScriptedBackend):
        async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
            written = 0
            try:
                async for chunk in super().generate(request):
                    written += 1
                    yield chunk
            finally:
                closed_after.append(written)

    entry = ModelEntry("alpha", Watched(["I am alpha, made by nobody."], "alpha"), "test")
    svc = ArenaService(ModelDirectory.of([entry]), ArenaStore(tmp_path / "s.db"))
    chat = Conversation("alpha")
    chat.ask("Who are you?")

    async def stopped_after_two_words() -> list[str]:
        texts = []
        async for text in svc.stream(chat, Sampling(), "u"):
            texts.append(text)
            if len(texts) == 2:
                chat.mark_stopped()  # what the page's Stop handler does
        return texts

    texts = asyncio.run(stopped_after_two_words())
    # closed after the two chunks shown, not after all six words and the end
    assert texts == ["I", "I am"] and closed_after == [2]
    assert chat.reply == "I am" and chat.reply_stopped
    (logged,) = svc.store.events_of("chat")
    assert logged.flags["outcome"] == "stopped"
    assert logged.states[0]["messages"][-1] == ["assistant", "I am"]


class Stalling(ScriptedBackend):
    """Writes one word, then waits for a next token that never comes (a long prompt being
    read, a provider that hangs); records whether its generation was closed."""

    def __init__(self) -> None:
        super().__init__(["unused"], "stalling")
        self.closed = False

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        try:
            yield GenerationChunk(text="I")
            await asyncio.Event().wait()
            yield GenerationChunk(text=" never")
        finally:
            self.closed = True


def stalling_chat(tmp_path: Path) -> tuple[ArenaService, Conversation, Stalling]:
    """A service with a stalling model, and a chat with one question to it."""
    backend = Stalling()
    svc = ArenaService(
        ModelDirectory.of([ModelEntry("slow", backend, "test")]), ArenaStore(tmp_path / "s.db")
    )
    chat = Conversation("slow")
    chat.ask("Who are you?")
    return svc, chat, backend


def test_stop_ends_a_reply_whose_model_is_silent(tmp_path: Path) -> None:
    """Stop ends the stream while the model sends nothing: the page no longer cancels the
    stream, so the stream must notice the mark without a next chunk to look at."""
    svc, chat, backend = stalling_chat(tmp_path)

    async def stop_during_the_silence() -> list[str]:
        texts = []
        async for text in svc.stream(chat, Sampling(), "u"):
            texts.append(text)
            asyncio.get_running_loop().call_later(0.2, chat.mark_stopped)
        return texts

    texts = asyncio.run(asyncio.wait_for(stop_during_the_silence(), 10))
    assert texts == ["I"] and backend.closed
    assert chat.reply == "I" and chat.reply_stopped
    (logged,) = svc.store.events_of("chat")
    assert logged.flags["outcome"] == "stopped"


def test_a_newer_reply_ends_the_stream_that_wrote_the_last(tmp_path: Path) -> None:
    """A question sent right after Stop, before the stopped stream noticed, starts a new
    reply: the old stream ends and never writes into it or takes its exchange out."""
    svc, chat, backend = stalling_chat(tmp_path)

    async def ask_again_while_it_streams() -> list[str]:
        texts = []
        async for text in svc.stream(chat, Sampling(), "u", chat.begin_reply()):
            texts.append(text)
            chat.mark_stopped()
            chat.ask("And now?")  # the next question, before the stream looked again
            chat.begin_reply()
        return texts

    texts = asyncio.run(asyncio.wait_for(ask_again_while_it_streams(), 10))
    assert texts == ["I"] and backend.closed
    assert [m.content for m in chat.messages] == ["Who are you?", "I", "And now?", ""]
    assert not chat.reply_stopped


def test_leaving_a_round_ends_both_streams_and_shows_nothing_queued(tmp_path: Path) -> None:
    """A new round while one side still writes: the round's streams end, and replies the
    other side had already written are not shown over the new round."""
    backend = Stalling()
    entries = [
        ModelEntry("alpha", ScriptedBackend(["I am alpha, made by nobody."], "alpha"), "test"),
        ModelEntry("slow", backend, "test"),
    ]
    svc = ArenaService(ModelDirectory.of(entries), ArenaStore(tmp_path / "s.db"))
    pair = (Conversation("alpha"), Conversation("slow"))
    for conversation in pair:
        conversation.ask("Who are you?")

    async def leave_after_the_first_update() -> list[tuple[str, str]]:
        updates = []
        async for update in svc.stream_pair(pair, Sampling(), "u"):
            updates.append(update)
            if len(updates) == 1:
                await asyncio.sleep(0.3)  # alpha writes all it has meanwhile
                for conversation in pair:
                    conversation.end_streams()  # what New round does
        return updates

    updates = asyncio.run(asyncio.wait_for(leave_after_the_first_update(), 10))
    assert len(updates) == 1 and backend.closed
    assert {e.models[0]: e.flags.get("outcome") for e in svc.store.events_of("chat")} == {
        "alpha": None,  # it had finished
        "slow": "stopped",
    }
