"""`build_ui`: the whole web UI, one Gradio Blocks page with the tabs in arena order
(battle, side by side, chat, leaderboard), the sidebar of the browser's chats, and an
optional terms-of-use gate before the first battle. The model lists are re-read from the
directory whenever a page loads, so models that join later appear without a restart; the
tab and the chat a browser was on come back after a reload.

`mount` serves it on a FastAPI app with the leaderboard's JSON, the page's stylesheet
(`page.css`: the phone layout), no "Use via API" footer (the handlers are private), and
a Content-Security-Policy that lets images load only from the page itself."""

# No `from __future__ import annotations`: Gradio finds the `gr.SelectData` parameter by
# its annotation at run time.
import hashlib
from pathlib import Path
from typing import Any

from palestra.webui.arena_page import build_arena_page
from palestra.webui.chat_page import build_chat_page, build_sidebar, model_card
from palestra.webui.leaderboard_page import build_leaderboard_page, mount_leaderboard_json
from palestra.webui.render import IMAGE_POLICY
from palestra.webui.service import ArenaService

CSS = Path(__file__).with_name("page.css")
TABS = ("battle", "sbs", "chat", "leaderboard")


def terms_digest(terms: str) -> str:
    """What a browser keeps once it agreed: changed terms are asked again."""
    return hashlib.sha256(terms.encode()).hexdigest()[:16]


def build_ui(service: ArenaService) -> Any:
    import gradio as gr

    terms = service.terms()
    with gr.Blocks(title=service.settings.title) as page:
        gr.Markdown(
            f"# {service.settings.title}: chat with open models and vote for the better one",
            elem_id="page-title",
        )
        agreed_kept = service.browser_state("", "palestra-terms")
        agreed = gr.State(not terms)  # the server's own record for this page
        with gr.Column(visible=bool(terms), elem_id="terms") as gate:
            gr.Markdown(f"### Terms of use\n\n{terms}", elem_id="terms-text")
            agree = gr.Button("I agree", variant="primary", elem_id="terms-agree")
        sidebar = build_sidebar(service)
        tab_kept = service.browser_state("battle", "palestra-tab")
        with gr.Tabs(selected="battle") as tabs:
            _, _, outages, battle_box = build_arena_page(service, anonymous=True, agreed=agreed)
            sbs_a, sbs_b, _, sbs_box = build_arena_page(service, anonymous=False, agreed=agreed)
            chat_model, chat_card, restore_chat, restore_io = build_chat_page(service, sidebar)
            leaderboard, board_inputs, board_outputs = build_leaderboard_page(service)

        def refresh_models() -> tuple[Any, ...]:
            """A fresh page gets the models served now (workers join after start-up), and
            two different models side by side; the side-by-side pickers may be used from
            now on (the chat's once its chat is restored)."""
            models = service.directory.chat_models()

            def choose(index: int, ready: bool = False) -> Any:
                value = models[min(index, len(models) - 1)] if models else None
                update = gr.update(choices=models, value=value)
                return {**update, "interactive": True} if ready else update

            first = models[0] if models else None
            return choose(0), model_card(service, first), choose(0, True), choose(1, True)

        def back_to_tab(tab: str, chosen: bool) -> Any:
            """The tab this browser was on, unless a tab was chosen while the page loaded."""
            return gr.update(selected=tab) if tab in TABS[1:] and not chosen else gr.update()

        def gated(kept: str, agreed_here: bool) -> tuple[Any, ...]:
            """The gate and the arena boxes as this browser's agreement says. An "I agree"
            clicked before this page-load event ran counts too (`agreed_here`): without
            it, a load slower than the click closed the boxes the click had opened."""
            ok = agreed_here or not terms or kept == terms_digest(terms)
            box = gr.update(interactive=ok)
            return ok, gr.update(visible=not ok), box, box

        def agree_now() -> tuple[Any, ...]:
            return (terms_digest(terms), *gated(terms_digest(terms), True))

        loading = page.load(
            refresh_models, None, [chat_model, chat_card, sbs_a, sbs_b], **service.api_access
        ).then(restore_chat, *restore_io, **service.api_access)
        picked = gr.State(False)  # whether this page's user has chosen a tab yet
        loading.then(back_to_tab, [tab_kept, picked], [tabs], **service.api_access)
        page.load(leaderboard, board_inputs, board_outputs, **service.api_access)
        page.load(service.outage_notice, None, outages, **service.api_access)
        page.load(
            gated, [agreed_kept, agreed], [agreed, gate, battle_box, sbs_box], **service.api_access
        )
        agree.click(
            agree_now, None, [agreed_kept, agreed, gate, battle_box, sbs_box], **service.api_access
        )

        def remember(event: gr.SelectData) -> tuple[str, bool]:
            return (TABS[event.index] if isinstance(event.index, int) else "battle"), True

        tabs.select(remember, None, [tab_kept, picked], queue=False, **service.api_access)
    page.queue(default_concurrency_limit=None)
    return page


def mount(app: Any, service: ArenaService, path: str = "/") -> Any:
    """The UI mounted on a FastAPI app (how `palestra serve` and `palestra webui` run it),
    with the leaderboard's JSON beside it."""
    import gradio as gr

    @app.middleware("http")
    async def image_policy(request: Any, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", IMAGE_POLICY)
        return response

    mount_leaderboard_json(app, service)
    return gr.mount_gradio_app(
        app, build_ui(service), path=path, footer_links=["gradio"], css=CSS.read_text("utf-8")
    )
