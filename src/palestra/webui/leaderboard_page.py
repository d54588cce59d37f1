"""The "Leaderboard" tab: Bradley-Terry ratings with confidence intervals, ranks with ties
and vote counts from the store's battles through the arena pipeline (cleaned as `palestra
arena rate` cleans them; the page says which filters ran and what they removed), for all
battles or one category, with or without style control; the rating chart with its
intervals, the win-rate heat map and the battle counts (plotly, a number in each cell).
The table sorts by any column; a model with fewer votes than `--preliminary-votes` is
marked preliminary, as LMArena marks new models. Shown on load and on "Refresh" as the
store's `LiveBoard` last computed it, with its time. The same board is
served as JSON at /api/leaderboard for other front ends (`mount_leaderboard_json`)."""

from __future__ import annotations

import time
from typing import Any

from palestra.arena.categories import CATEGORIES
from palestra.webui.service import ArenaService

ALL = "all"


def category_choices(service: ArenaService) -> list[tuple[str, str]]:
    """The dropdown's choices: all battles, then each category that has battles."""
    counts = service.board.category_counts
    named = [(f"{c.replace('_', ' ')} ({counts[c]})", c) for c in CATEGORIES if counts[c]]
    return [("all battles", ALL), *named]


COLUMNS = ["rank", "model", "rating", "95% CI", "votes", "status"]


def rows_of(board: Any, preliminary_below: int) -> list[list[Any]]:
    """The sortable table's rows (numbers stay numbers, so they sort as numbers)."""
    styled = bool(board.rows) and board.rows[0].style_rating is not None
    rows = []
    for r in board.rows:
        rating, lower, upper, rank = r.rating, r.lower, r.upper, r.rank
        if styled:  # the style-controlled board ranks by its own fit
            rating, rank = r.style_rating, r.style_rank
            lower, upper = r.style_lower, r.style_upper
        status = "preliminary" if r.battles < preliminary_below else ""
        interval = f"{lower - rating:+.0f} / {upper - rating:+.0f}"
        rows.append([rank, r.model, round(rating, 1), interval, r.battles, status])
    return sorted(rows, key=lambda row: (row[0], -row[2]))


def build_leaderboard_page(service: ArenaService) -> tuple[Any, list[Any], list[Any]]:
    """Returns (the refresh function, its inputs, its outputs) for the app's page load."""
    import gradio as gr

    with gr.Tab("Leaderboard", id="leaderboard"):
        with gr.Row():
            category = gr.Dropdown(
                [("all battles", ALL)], value=ALL, label="Category",
                elem_id="leaderboard-category", scale=2,
            )  # fmt: skip
            style = gr.Checkbox(
                False, label="Style control (length and markdown)", elem_id="leaderboard-style"
            )
            refresh = gr.Button("Refresh", elem_id="leaderboard-refresh", scale=1)
        table = gr.Markdown(elem_id="leaderboard-table")
        ranking = gr.Dataframe(
            headers=COLUMNS, datatype=["number", "str", "number", "str", "number", "str"],
            interactive=False, wrap=False, elem_id="leaderboard-rows",
            label="Ranking (sort by any column from its menu)", max_height=520,
        )  # fmt: skip
        # Charts show only with a board (Gradio's empty plot is an unlabelled box).
        ratings = gr.Plot(
            label="Ratings with intervals", elem_id="leaderboard-ratings", visible=False
        )
        with gr.Row():
            win_rate = gr.Plot(label="Win rate", elem_id="leaderboard-win-rate", visible=False)
            counts = gr.Plot(label="Battle counts", elem_id="leaderboard-counts", visible=False)

        def compute(chosen: str | None, styled: bool) -> tuple[Any, ...]:
            chosen = chosen or ALL
            result = service.leaderboard(None if chosen == ALL else chosen, bool(styled))
            menu = gr.update(choices=category_choices(service), value=chosen)
            board = result.board
            kept = service.board.boards.get((None if chosen == ALL else chosen, bool(styled)))
            when = time.gmtime(kept.updated if kept else 0)
            updated = time.strftime("%Y-%m-%d %H:%M:%S UTC", when)
            if board is None:
                text = "*Not enough battle votes to rate yet: vote in the Arena (battle) tab.*"
                if result.total:
                    text += f"\n\n{result.summary()}."
                empty, hidden = gr.update(value=[]), gr.update(value=None, visible=False)
                return menu, f"{text} Updated {updated}.", empty, hidden, hidden, hidden
            from palestra.arena.charts import figures

            charts = figures(board)
            votes = int(board.meta["battles"])
            plural = "" if votes == 1 else "s"
            scope = "" if chosen == ALL else f" in {chosen.replace('_', ' ')}"
            floor = service.settings.preliminary_votes
            text = (
                f"{votes} vote{plural}{scope} on {len(board.rows)} models. "
                f"{result.summary()}. Updated {updated}. Models with fewer than {floor} votes "
                "are preliminary: their rating may still move a lot."
            )
            if board.rows and board.rows[0].style_rating is not None:
                text += " Ratings are style-controlled: answer length and markdown held equal."
            if board.style_coefficients:
                text += "\n\n" + board.to_markdown().split("\n\n", 1)[-1]
            table_rows = rows_of(board, floor)
            shown = [
                gr.update(value=charts[name], visible=True)
                for name in ("ratings_ci", "win_rate", "battle_counts")
            ]
            return (menu, text, table_rows, *shown)

        inputs = [category, style]
        outputs = [category, table, ranking, ratings, win_rate, counts]
        refresh.click(compute, inputs, outputs, **service.api_access)
        category.change(compute, inputs, outputs, **service.api_access)
        style.change(compute, inputs, outputs, **service.api_access)
    return compute, inputs, outputs


def mount_leaderboard_json(app: Any, service: ArenaService) -> None:
    """GET /api/leaderboard?category=coding&style_control=true: the board the page shows."""
    from fastapi import Query
    from fastapi.responses import JSONResponse

    @app.get("/api/leaderboard")
    def leaderboard_json(
        category: str = Query(ALL, description=f"'{ALL}' or one of {', '.join(CATEGORIES)}"),
        style_control: bool = Query(False),
    ) -> JSONResponse:
        import json

        if category != ALL and category not in CATEGORIES:
            message = (
                f"unknown category {category!r}; expected {ALL} or one of {', '.join(CATEGORIES)}"
            )
            return JSONResponse(
                {"error": {"message": message, "type": "invalid_request_error"}}, 400
            )
        key = None if category == ALL else category
        result = service.leaderboard(key, style_control)
        kept = service.board.boards.get((key, style_control))
        return JSONResponse(
            {
                "category": category,
                "style_control": style_control,
                "updated": kept.updated if kept else None,
                "summary": result.summary(),
                "categories": dict(service.board.category_counts),
                "board": json.loads(result.board.to_json()) if result.board else None,
            }
        )
