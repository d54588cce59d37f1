"""The "Leaderboard" tab: Bradley-Terry ratings with confidence intervals and vote counts
from the anonymous battles in the store, the win-rate heat map and the battle counts
(plotly), recomputed on load and on "Refresh"."""

from __future__ import annotations

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
            board = service.leaderboard()
            if board is None:
                return (
                    "*No anonymous battle votes yet: vote in the Arena (battle) tab.*",
                    None,
                    None,
                )
            from palestra.arena.charts import figures

            charts = figures(board)
            votes = int(board.meta["battles"])
            plural = "" if votes == 1 else "s"
            text = f"{votes} vote{plural} on {len(board.rows)} models.\n\n" + board.to_markdown()
            return text, charts["win_rate"], charts["battle_counts"]

        outputs = [table, win_rate, counts]
        refresh.click(compute, None, outputs)
    return compute, outputs
