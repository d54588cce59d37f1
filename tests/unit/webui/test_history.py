"""A browser's chat history as data: kept newest first, renamed, deleted, exported, and a
chat restored from it continues where it was, and what a browser keeps is readable after a
restart and by every web server on the store."""

from __future__ import annotations

from pathlib import Path

from palestra.webui import history
from palestra.webui.conversation import STOPPED_MARK, Conversation


def chat(question: str, model: str = "alpha") -> Conversation:
    conversation = Conversation(model, system="Be brief.")
    conversation.ask(question, ("data:image/png;base64,AA",))
    conversation.set_reply("An answer.")
    return conversation


def test_keep_rename_delete_export() -> None:
    first, second = chat("What is the capital of Italy?"), chat("x" * 60)
    kept = history.keep(history.empty(), first.saved())
    kept = history.keep(kept, second.saved())
    assert [label for label, _ in history.choices(kept)] == [
        "x" * 39 + "…",
        first.messages[0].content,
    ]
    assert kept["current"] == second.conv_id
    kept = history.rename(kept, second.conv_id, "  Long   one ")
    second.ask("more")
    kept = history.keep(kept, second.saved())  # a renamed chat keeps its title
    assert history.current(kept)["title"] == "Long one"
    exported = history.export(kept)
    assert exported[0]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert [m["role"] for m in exported[0]["messages"][1:]] == [
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    kept = history.delete(kept, second.conv_id)
    assert kept["current"] is None and [c["id"] for c in kept["chats"]] == [first.conv_id]
    assert history.select(kept, "gone")["current"] is None
    assert history.choices({"chats": [{"no": "id"}, "junk"]}) == []  # storage is user data


def test_a_restored_chat_goes_on_where_it_was() -> None:
    original = chat("Hi")
    original.mark_stopped()
    restored = Conversation.restored(history.keep(None, original.saved())["chats"][0])
    assert (restored.conv_id, restored.model, restored.system) == (
        original.conv_id,
        "alpha",
        "Be brief.",
    )
    assert [(m.role, m.content) for m in restored.messages] == [
        ("user", "Hi"),
        ("assistant", "An answer."),
    ]
    assert restored.messages[0].images == ()  # images are not kept in the browser
    assert restored.chatbot()[1]["content"].endswith(STOPPED_MARK)


def test_edit_truncates_and_failure_takes_the_exchange_out() -> None:
    conversation = chat("one")
    conversation.ask("two")
    conversation.set_reply("second")
    conversation.mark_stopped()
    conversation.truncate(2)
    assert [m.content for m in conversation.messages] == ["one", "An answer."]
    assert conversation.stopped == set()
    conversation.ask("three")
    question = conversation.fail("alpha could not answer: overloaded")
    assert question is not None and question.content == "three"
    assert len(conversation.messages) == 2 and conversation.error.endswith("overloaded")
    assert all(m.content for m in conversation.prompt_messages())


def test_what_the_browser_keeps_survives_a_restart_and_another_server(tmp_path: Path) -> None:
    """Kept values are encrypted with a secret derived from the store's salt: a page
    built by another server on the same store (or after a restart) reads them; Gradio's
    default secret changes at every start."""
    import gradio as gr

    from palestra.arena.store import ArenaStore
    from palestra.webui.app import build_ui
    from palestra.webui.models import ModelDirectory
    from palestra.webui.service import ArenaService

    def secrets(store: Path) -> dict[str, str]:
        page = build_ui(ArenaService(ModelDirectory.of([]), ArenaStore(store)))
        kept = [b for b in page.blocks.values() if isinstance(b, gr.BrowserState)]
        return {b.storage_key: b.secret for b in kept}

    first, second = secrets(tmp_path / "a.db"), secrets(tmp_path / "a.db")
    assert set(first) == {"palestra-chats", "palestra-terms", "palestra-tab"}
    assert first == second
    assert secrets(tmp_path / "b.db")["palestra-chats"] != first["palestra-chats"]
