"""The "Chat" tab and its sidebar of past chats: pick a model (its card shown), set a
system prompt and sampling, chat with streamed replies (images for vision models); stop
(the reply stays, marked stopped), regenerate the last reply, edit a question and
regenerate from there, and give each reply one piece of feedback (like, dislike or flag)
that can be changed. The chats are kept in the browser (`history`): a reload restores the
current one; the sidebar starts, opens, renames, deletes and exports them."""

# No `from __future__ import annotations`: Gradio finds the `gr.Request` and event-data
# parameters by their annotations at run time.
import json
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from palestra.core.errors import InvalidRequestError, PalestraError
from palestra.webui import history as chats
from palestra.webui.conversation import Conversation
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

FEEDBACK = {True: "upvote", False: "downvote", "Flag": "flag", "": None}
STORAGE_KEY = "palestra-chats"


@dataclass
class Sidebar:
    """The sidebar's widgets (built by `build_sidebar`, wired by `build_chat_page`)."""

    new_chat: Any
    chats: Any
    title: Any
    rename: Any
    delete: Any
    export: Any
    exported: Any
    kept: Any  # the browser's chats (`history`)


def build_sidebar(service: ArenaService) -> Sidebar:
    # At the page's top level: a BrowserState inside a tab is read only once the tab shows.
    kept = service.browser_state(chats.empty(), STORAGE_KEY)
    with gr.Sidebar(label="Chats", open=False, elem_id="chat-sidebar"):
        new_chat = gr.Button("New chat", elem_id="chat-new")
        listed = gr.Radio([], label="Your chats (kept in this browser)", elem_id="chat-list")
        title = gr.Textbox(label="Title of this chat", elem_id="chat-title")
        with gr.Row():
            rename = gr.Button("Rename", size="sm", elem_id="chat-rename")
            delete = gr.Button("Delete", size="sm", variant="stop", elem_id="chat-delete")
        export = gr.Button("Export all chats (JSON)", size="sm", elem_id="chat-export")
        exported = gr.File(label="Exported chats", visible=False, elem_id="chat-exported")
    return Sidebar(new_chat, listed, title, rename, delete, export, exported, kept)


def model_card(service: ArenaService, name: str | None) -> str:
    if not name:
        return "*No model is available yet.*"
    entry = service.directory.get(name)
    vision = " Accepts images." if entry.vision else ""
    return f"**{name}**: {entry.card}.{vision}"


def build_chat_page(service: ArenaService, sidebar: Sidebar) -> tuple[Any, Any, Any, Any]:
    """Returns (model dropdown, card, the restore handler, its outputs) for the app's page
    load: the model list first, then the browser's current chat. The picker and the box
    stay disabled until that load has run, so that it never overwrites a model chosen or
    a chat begun before it returned (a slow server, a quick user)."""
    models = service.directory.chat_models()
    with gr.Tab("Chat", id="chat"):
        state = gr.State(None)
        kept = sidebar.kept
        with gr.Row():
            model = gr.Dropdown(
                models, value=models[0] if models else None, label="Model", scale=2,
                elem_id="chat-model", interactive=False,
            )  # fmt: skip
            card = gr.Markdown(elem_id="chat-model-card")
        chatbot = gr.Chatbot(
            label="Chat", height=420, elem_id="chat-chatbot", editable="user",
            buttons=["copy", "copy_all"],
            feedback_options=("Like", "Dislike", "Flag"),
        )  # fmt: skip
        box, sent, busy = message_box(
            "chat", "Type a message and press Enter (images: vision models only)", False
        )
        status = gr.Markdown(elem_id="chat-notice")
        with gr.Accordion("Parameters", open=False):
            system = gr.Textbox(label="System prompt", lines=2, elem_id="chat-system")
            temperature, top_p, max_tokens = sampling_controls()

        def bubbles(conversation: Conversation | None) -> Any:
            feedback = {
                "upvote": "Like", "downvote": "Dislike", "flag": "Flag",
            }  # fmt: skip
            if conversation is None:
                return gr.update(value=[], label="Chat", feedback_value=[])
            values = [
                feedback[conversation.feedback[i][0]] if i in conversation.feedback else None
                for i, m in enumerate(conversation.messages)
                if m.role == "assistant"
            ]
            return gr.update(
                value=conversation.chatbot(), label=conversation.model, feedback_value=values
            )

        def listing(kept_now: chats.History) -> Any:
            return gr.update(choices=chats.choices(kept_now), value=kept_now.get("current"))

        def saved(conversation: Conversation, kept_now: chats.History) -> tuple[Any, Any, Any]:
            """(history, list, title) once the chat has changed."""
            if not conversation.messages:
                return kept_now, gr.update(), gr.update()
            kept_now = chats.keep(kept_now, conversation.saved())
            title = (chats.current(kept_now) or {}).get("title", "")
            return kept_now, listing(kept_now), title

        async def reply(
            conversation: Conversation,
            sampling: Sampling,
            kept_now: chats.History,
            request: Any,
            question: Any = None,
        ) -> AsyncIterator[tuple[Any, ...]]:
            """Stream the reply; outputs are (state, chatbot, box, status, busy, history,
            list, title). A failed reply is a notice; its question goes back to the box."""
            ticket = conversation.begin_reply()  # first: no stream writes a reply not its own
            user = user_of(service, request)
            same = gr.update()
            yield (conversation, bubbles(conversation), streaming(True), "", True,
                   same, same, same)  # fmt: skip
            async for _ in service.stream(conversation, sampling, user, ticket):
                yield conversation, bubbles(conversation), same, same, same, same, same, same
            # Gradio ends an event with its last update again, so a stream that Stop ended
            # ends with what Stop showed, and one a newer stream took over changes nothing.
            if not conversation.owns_reply(ticket):
                yield tuple(gr.skip() for _ in outputs)
                return
            if conversation.reply_stopped:
                yield stopped_view(conversation, same, same, same)
                return
            if conversation.error:
                back = question if question is not None else same
                box = streaming(False, value=back)
                yield (conversation, bubbles(conversation), box,
                       notice(conversation.error, "error"), False,
                       *saved(conversation, kept_now))  # fmt: skip
                return
            yield (conversation, bubbles(conversation), streaming(False), "", False,
                   *saved(conversation, kept_now))  # fmt: skip

        async def send(
            message: Any,
            conversation: Conversation | None,
            name: str,
            system_prompt: str,
            t: float,
            p: float,
            n: int,
            kept_now: chats.History,
            request: gr.Request,
        ) -> AsyncIterator[tuple[Any, ...]]:
            if message is None:  # Enter while a reply streamed: the box kept the text
                return
            if conversation is None or conversation.model != name:
                conversation = Conversation(name or "")
            conversation.system = system_prompt or ""  # an edited prompt applies from now on
            same = gr.update()
            try:
                text, images = images_of(message)
                if not name:
                    raise PalestraError("no model is available yet")
                service.admit(
                    user_of(service, request), text, [conversation], battle=False, images=images
                )
            except PalestraError as exc:  # the message goes back into the box, not lost
                yield (conversation, bubbles(conversation), message,
                       notice(str(exc), "error"), same, same, same, same)  # fmt: skip
                return
            conversation.ask(text, images)
            sampling = Sampling(t, p, int(n))
            async for update in reply(conversation, sampling, kept_now, request, message):
                yield update

        async def again(
            conversation: Conversation | None,
            t: float,
            p: float,
            n: int,
            kept_now: chats.History,
            request: gr.Request,
        ) -> AsyncIterator[tuple[Any, ...]]:
            if conversation is None or not conversation.messages:
                return
            conversation.drop_last_reply()
            conversation.feedback.pop(len(conversation.messages) - 1, None)
            async for update in reply(conversation, Sampling(t, p, int(n)), kept_now, request):
                yield update

        async def edited(
            conversation: Conversation | None,
            t: float,
            p: float,
            n: int,
            kept_now: chats.History,
            data: gr.EditData,
            request: gr.Request,
        ) -> AsyncIterator[tuple[Any, ...]]:
            """A question edited in place: the chat from there is asked again."""
            index = data.index if isinstance(data.index, int) else data.index[0]
            if conversation is None or not (0 <= index < len(conversation.messages)):
                return
            if conversation.messages[index].role != "user":
                return
            text = data.value if isinstance(data.value, str) else str(data.value)
            images = conversation.messages[index].images
            conversation.truncate(index)
            conversation.feedback = {i: f for i, f in conversation.feedback.items() if i < index}
            conversation.ask(text, images)
            async for update in reply(conversation, Sampling(t, p, int(n)), kept_now, request):
                yield update

        def stopped(conversation: Conversation | None, kept_now: chats.History) -> tuple[Any, ...]:
            if conversation is None:
                return (conversation, bubbles(None), streaming(False), "", False,
                        kept_now, gr.update(), gr.update())  # fmt: skip
            conversation.mark_stopped()
            return stopped_view(conversation, *saved(conversation, kept_now))

        def stopped_view(conversation: Conversation, *history: Any) -> tuple[Any, ...]:
            """The page once a reply is stopped (`history`: the history, list and title)."""
            said = notice("stopped: the reply so far is kept", "info")
            return conversation, bubbles(conversation), streaming(False), said, False, *history

        def feedback(
            conversation: Conversation | None, data: gr.LikeData, request: gr.Request
        ) -> tuple[Any, Any]:
            if conversation is None:
                return bubbles(conversation), notice("chat with a model first", "error")
            kind = FEEDBACK.get(data.liked)
            index = data.index if isinstance(data.index, int) else data.index[0]
            try:
                service.feedback(kind, conversation, index, user_of(service, request))
            except PalestraError as exc:
                return bubbles(conversation), notice(str(exc), "error")
            said = {"upvote": "liked", "downvote": "disliked", "flag": "flagged", None: "cleared"}
            return bubbles(conversation), notice(f"reply {said[kind]}; thank you", "ok")

        def fresh(kept_now: chats.History) -> tuple[Any, ...]:
            """A new chat (the box keeps what is typed, and takes messages again)."""
            kept_now = {**kept_now, "current": None}
            return None, bubbles(None), "", kept_now, listing(kept_now), "", streaming(False), False

        def leaving(handler: Callable[..., tuple[Any, ...]]) -> Callable[..., tuple[Any, ...]]:
            """`handler`, for an event that replaces the chat shown (its first input is the
            chat being left): a reply still streaming into that chat ends first."""

            def replace_chat(conversation: Conversation | None, *inputs: Any) -> tuple[Any, ...]:
                if conversation is not None:
                    conversation.end_streams()
                return handler(*inputs)

            return replace_chat

        def open_chat(chat_id: str | None, kept_now: chats.History) -> tuple[Any, ...]:
            found = chats.find(kept_now, chat_id)
            if found is None:
                return (*fresh(kept_now), gr.update(), gr.update())
            conversation = Conversation.restored(found)
            kept_now = chats.select(kept_now, chat_id)
            picked = gr.update(value=conversation.model) if conversation.model else gr.update()
            system_prompt = gr.update(value=conversation.system)
            return (conversation, bubbles(conversation), "", kept_now, listing(kept_now),
                    found.get("title", ""), streaming(False), False,
                    picked, system_prompt)  # fmt: skip

        def restore(kept_now: chats.History) -> tuple[Any, ...]:
            """A page load: the browser's current chat, if it has one; then the picker and
            the box may be used."""
            kept_now = kept_now or chats.empty()
            *shown, box_now, busy_now, picked, system_prompt = open_chat(
                kept_now.get("current"), kept_now
            )
            ready = gr.update(interactive=True)
            return (*shown, {**box_now, **ready}, busy_now, {**picked, **ready}, system_prompt)

        def renamed(title: str, kept_now: chats.History) -> tuple[Any, Any]:
            kept_now = chats.rename(kept_now, kept_now.get("current"), title)
            return kept_now, listing(kept_now)

        def deleted(kept_now: chats.History) -> tuple[Any, ...]:
            return fresh(chats.delete(kept_now, kept_now.get("current")))

        def exported(kept_now: chats.History) -> Any:
            if not chats.choices(kept_now):
                raise InvalidRequestError("no chats to export yet")
            with tempfile.NamedTemporaryFile(
                "w", suffix=".json", prefix="palestra-chats-", delete=False
            ) as file:
                json.dump(chats.export(kept_now), file, ensure_ascii=False, indent=2)
            return gr.update(value=file.name, visible=True)

        controls = [temperature, top_p, max_tokens]
        outputs = [state, chatbot, box, status, busy, kept, sidebar.chats, sidebar.title]
        # Enter moves the message out of the box in the browser (TAKE_JS), then it is sent.
        box.submit(
            None, [box, busy], [sent, box, status], js=TAKE_JS, trigger_mode="multiple"
        ).then(
            send, [sent, state, model, system, *controls, kept], outputs,
            concurrency_limit=None, **service.api_access,
        )  # fmt: skip
        chatbot.retry(
            again, [state, *controls, kept], outputs, concurrency_limit=None, **service.api_access
        )
        chatbot.edit(
            edited, [state, *controls, kept], outputs, concurrency_limit=None, **service.api_access
        )
        # Stop marks the reply and its stream ends itself (webui/stoppable.py), rather than
        # being cancelled: Gradio (6.31) turns a cancel's closing message (`output: {}`)
        # into an update with no data, which its page fails to apply, and the stream's
        # outputs read "Error" when that message lands last.
        box.stop(stopped, [state, kept], outputs, **service.api_access)
        chatbot.like(feedback, [state], [chatbot, status], **service.api_access)
        # What replaces the chat ends its stream the same way (`leaving`), and sets the box
        # back to Send.
        blank = [state, chatbot, status, kept, sidebar.chats, sidebar.title, box, busy]
        chatbot.clear(leaving(fresh), [state, kept], blank, **service.api_access)
        sidebar.new_chat.click(leaving(fresh), [state, kept], blank, **service.api_access)
        sidebar.chats.input(
            leaving(open_chat),
            [state, sidebar.chats, kept],
            [*blank, model, system],
            **service.api_access,
        )
        sidebar.rename.click(
            renamed, [sidebar.title, kept], [kept, sidebar.chats], **service.api_access
        )
        sidebar.delete.click(leaving(deleted), [state, kept], blank, **service.api_access)
        sidebar.export.click(exported, [kept], [sidebar.exported], **service.api_access)
        model.change(lambda name: model_card(service, name), [model], [card], **service.api_access)
        # Only a user's pick starts a new conversation: `change` also fires when a page load
        # refreshes the list, and would wipe a chat that had just begun.
        model.input(leaving(fresh), [state, kept], blank, **service.api_access)
        return model, card, restore, ([kept], [*blank, model, system])
