"""The "Direct chat" tab: pick a model (its card shown), set a system prompt and sampling,
chat with streamed replies (images for vision models), stop, regenerate, clear, and vote
(upvote, downvote, flag). Every vote is acknowledged only once the store has it."""

# No `from __future__ import annotations`: Gradio finds the `gr.Request` parameter by its
# annotation at run time.
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr

from palestra.arena.battles import MODEL_VOTES
from palestra.core.errors import PalestraError
from palestra.webui.conversation import Conversation
from palestra.webui.service import ArenaService, Sampling
from palestra.webui.widgets import images_of, notice, sampling_controls, take, user_of


def build_chat_page(service: ArenaService) -> tuple[Any, Any, Any]:
    """Returns (model dropdown, card, card text function) for the app to refresh on load."""
    models = service.directory.chat_models()
    with gr.Tab("Direct chat", id="chat"):
        state = gr.State(None)
        sent = gr.State(None)  # the message just taken out of the box
        with gr.Row():
            model = gr.Dropdown(
                models, value=models[0] if models else None, label="Model", scale=2,
                elem_id="chat-model",
            )  # fmt: skip
            card = gr.Markdown(elem_id="chat-model-card")
        chatbot = gr.Chatbot(label="Chat", height=420, elem_id="chat-chatbot")
        with gr.Row():
            textbox = gr.MultimodalTextbox(
                placeholder="Type a message and press Enter (images: vision models only)",
                file_types=["image"], show_label=False, scale=8, elem_id="chat-input",
            )  # fmt: skip
            stop = gr.Button("Stop", variant="stop", scale=1, elem_id="chat-stop")
        status = gr.Markdown(elem_id="chat-notice")
        with gr.Row():
            upvote = gr.Button("Upvote", elem_id="chat-upvote")
            downvote = gr.Button("Downvote", elem_id="chat-downvote")
            flag = gr.Button("Flag", elem_id="chat-flag")
            regenerate = gr.Button("Regenerate", elem_id="chat-regenerate")
            clear = gr.Button("Clear", elem_id="chat-clear")
        with gr.Accordion("Parameters", open=False):
            system = gr.Textbox(label="System prompt", lines=2, elem_id="chat-system")
            temperature, top_p, max_tokens = sampling_controls()

        def show_card(name: str | None) -> str:
            if not name:
                return "*No model is available yet.*"
            entry = service.directory.get(name)
            vision = " Accepts images." if entry.vision else ""
            return f"**{name}**: {entry.card}.{vision}"

        async def reply(
            conversation: Conversation, sampling: Sampling, request: Any
        ) -> AsyncIterator[tuple[Any, ...]]:
            user = user_of(service, request)
            async for _ in service.stream(conversation, sampling, user):
                yield conversation, conversation.chatbot(), gr.update(), ""

        async def send(
            message: Any,
            conversation: Conversation | None,
            name: str,
            system_prompt: str,
            t: float,
            p: float,
            n: int,
            request: gr.Request,
        ) -> AsyncIterator[tuple[Any, ...]]:
            if conversation is None or conversation.model != name:
                conversation = Conversation(name or "")
            conversation.system = system_prompt or ""  # an edited prompt applies from now on
            try:
                text, images = images_of(message)
                if not name:
                    raise PalestraError("no model is available yet")
                service.admit(
                    user_of(service, request), text, [conversation], battle=False, images=images
                )
            except PalestraError as exc:  # the message goes back into the box, not lost
                yield conversation, conversation.chatbot(), message, notice(str(exc), "error")
                return
            conversation.ask(text, images)
            yield conversation, conversation.chatbot(), gr.update(), ""
            async for update in reply(conversation, Sampling(t, p, int(n)), request):
                yield update

        async def again(
            conversation: Conversation | None, t: float, p: float, n: int, request: gr.Request
        ) -> AsyncIterator[tuple[Any, ...]]:
            if conversation is None or not conversation.messages:
                yield conversation, [], gr.update(), notice("nothing to regenerate", "error")
                return
            conversation.drop_last_reply()
            async for update in reply(conversation, Sampling(t, p, int(n)), request):
                yield update

        def vote(kind: str) -> Any:
            def record(conversation: Conversation | None, request: gr.Request) -> str:
                if conversation is None:
                    return notice("chat with the model first, then vote", "error")
                try:
                    number = service.vote_model(kind, conversation, user_of(service, request))
                except PalestraError as exc:
                    return notice(str(exc), "error")
                return notice(f"{kind} recorded (#{number}); thank you", "ok")

            return record

        def reset() -> tuple[Any, ...]:
            """A new conversation (what the user is typing stays)."""
            return None, [], ""

        controls = [temperature, top_p, max_tokens]
        outputs = [state, chatbot, textbox, status]
        # The box is emptied by a quick event of its own before the reply starts (a stream's
        # first update could be merged away, leaving the sent message in the box).
        sending = textbox.submit(take, [textbox], [sent, textbox], queue=False).then(
            send, [sent, state, model, system, *controls], outputs, concurrency_limit=None
        )
        regenerating = regenerate.click(again, [state, *controls], outputs, concurrency_limit=None)
        stop.click(None, cancels=[sending, regenerating])
        for button, kind in zip((upvote, downvote, flag), MODEL_VOTES, strict=True):
            button.click(vote(kind), [state], [status])
        fresh = [state, chatbot, status]
        clear.click(reset, None, fresh, cancels=[sending, regenerating])
        model.change(show_card, [model], [card])
        # Only a user's pick starts a new conversation: `change` also fires when a page load
        # refreshes the list, and would wipe a chat that had just begun.
        model.input(reset, None, fresh)
        return model, card, show_card
