"""`build_ui`: the whole web UI, one Gradio Blocks page with the tabs in arena order
(battle, side-by-side, direct chat, leaderboard). The model lists are re-read from the
directory whenever a page loads, so models that join later appear without a restart."""

from __future__ import annotations

from typing import Any

from palestra.webui.arena_page import build_arena_page
from palestra.webui.chat_page import build_chat_page
from palestra.webui.leaderboard_page import build_leaderboard_page, mount_leaderboard_json
from palestra.webui.service import ArenaService


def build_ui(service: ArenaService) -> Any:
    import gradio as gr

    with gr.Blocks(title=service.settings.title) as page:
        gr.Markdown(
            f"## {service.settings.title}: chat with open models and vote for the better one"
        )
        with gr.Tabs():
            _, _, outages = build_arena_page(service, anonymous=True)
            sbs_a, sbs_b, _ = build_arena_page(service, anonymous=False)
            chat_model, chat_card, card_text = build_chat_page(service)
            leaderboard, board_inputs, board_outputs = build_leaderboard_page(service)

        def refresh_models() -> tuple[Any, ...]:
            """A fresh page gets the models served now (workers join after start-up)."""
            models = service.directory.chat_models()

            def choose(index: int) -> Any:
                value = models[min(index, len(models) - 1)] if models else None
                return gr.update(choices=models, value=value)

            first = models[0] if models else None
            return choose(0), card_text(first), choose(0), choose(1)

        page.load(refresh_models, None, [chat_model, chat_card, sbs_a, sbs_b])
        page.load(leaderboard, board_inputs, board_outputs)
        page.load(service.outage_notice, None, outages)
    page.queue(default_concurrency_limit=None)
    return page


def mount(app: Any, service: ArenaService, path: str = "/") -> Any:
    """The UI mounted on a FastAPI app (how `palestra serve` and `palestra webui` run it),
    with the leaderboard's JSON beside it."""
    import gradio as gr

    mount_leaderboard_json(app, service)
    return gr.mount_gradio_app(app, build_ui(service), path=path)
