"""The "Leaderboard" tab: Bradley-Terry ratings with confidence intervals and vote counts
from the store's battles through the arena pipeline (cleaned as `palestra arena rate`
cleans them; the page says which filters ran and what they removed), the win-rate heat
map and the battle counts (plotly), shown on load and on "Refresh" as the store's
`LiveBoard` last computed it (with its time)."""

from __future__ import annotations

import time
from typing import Any

from palestra.webui.service import ArenaService


def build_leaderboard_page(service: ArenaService) -> tuple[Any, Any]:
    """Returns (the refresh function, its outputs) for the app to run on page load."""
    import gradio as gr

    with gr.Tab("Leaderboard", id="leaderboard"):
        refresh = gr.Button("Refresh", elem_id="leaderboard-refresh")
        table = gr.Markdown(elem_id="leaderboard-table")
        with gr.Row():
            win_rate = gr.Plot(label="Win rate", elem_id="leaderboard-win-rate")
            counts = gr.Plot(label="Battle counts", elem_id="leaderboard-counts")

        def compute() -> tuple[Any, Any, Any]:
            result = service.leaderboard()
            board = result.board
            if board is None:
                text = "*Not enough battle votes to rate yet: vote in the Arena (battle) tab.*"
                if result.total:
                    text += f"\n\n{result.summary()}."
                return text, None, None
            from palestra.arena.charts import figures

            charts = figures(board)
            votes = int(board.meta["battles"])
            plural = "" if votes == 1 else "s"
            updated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(service.board.updated))
            text = (
                f"{votes} vote{plural} on {len(board.rows)} models. {result.summary()}. "
                f"Updated {updated}.\n\n{board.to_markdown()}"
            )
            return text, charts["win_rate"], charts["battle_counts"]

        outputs = [table, win_rate, counts]
        refresh.click(compute, None, outputs)
    return compute, outputs
