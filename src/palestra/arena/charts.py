"""Leaderboard charts with plotly: ratings with confidence intervals, the win-rate heat
map and battle counts. HTML always (plotly.js written beside it: no network needed to view
them); PNG too where kaleido and a Chromium are installed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from palestra.arena.leaderboard import Leaderboard
from palestra.core.errors import UnsupportedError


def figures(board: Leaderboard) -> dict[str, Any]:
    try:
        import plotly.graph_objects as go
    except ImportError as exc:
        raise UnsupportedError("charts need plotly: pip install 'palestra[arena]'") from exc
    rows = board.rows
    numbers = {"texttemplate": "%{z}", "hoverongaps": False}  # a number in each cell
    ci = go.Figure(
        go.Scatter(
            x=[r.model for r in rows],
            y=[r.rating for r in rows],
            mode="markers",
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [r.upper - r.rating for r in rows],
                "arrayminus": [r.rating - r.lower for r in rows],
            },
        )
    )
    ci.update_layout(
        title=f"Ratings with {board.meta.get('confidence', 0.95):.0%} intervals "
        f"({board.meta.get('interval')})",
        yaxis_title="rating",
        xaxis_tickangle=-45,
        height=600,
    )
    win = go.Figure(
        go.Heatmap(
            z=_off_diagonal(board.win_rate, digits=2),
            x=board.models,
            y=board.models,
            colorscale="RdBu",
            zmin=0,
            zmax=1,
            hovertemplate="%{y} beats %{x} in %{z:.0%} of their battles<extra></extra>",
            **numbers,
        )
    )
    win.update_layout(
        title="Win rate of row over column (ties count half)",
        xaxis_tickangle=-45,
        height=700,
        yaxis_autorange="reversed",
    )
    count = go.Figure(
        go.Heatmap(
            z=_off_diagonal(board.battle_counts),
            x=board.models,
            y=board.models,
            colorscale="Viridis",
            hovertemplate="%{y} vs %{x}: %{z} battles<extra></extra>",
            **numbers,
        )
    )
    count.update_layout(
        title="Battle counts", xaxis_tickangle=-45, height=700, yaxis_autorange="reversed"
    )
    return {"ratings_ci": ci, "win_rate": win, "battle_counts": count}


def _off_diagonal(matrix: Any, digits: int | None = None) -> list[list[Any]]:
    """The matrix with its diagonal blank (a model does not battle itself), rounded."""
    return [
        [
            None if i == j or value is None else (round(value, digits) if digits else value)
            for j, value in enumerate(row)
        ]
        for i, row in enumerate(matrix.tolist() if hasattr(matrix, "tolist") else matrix)
    ]


@contextlib.contextmanager
def one_browser_for_pngs() -> Iterator[None]:
    """PNGs written inside this block share one headless Chromium (kaleido's sync server)
    instead of starting one per image (4-5 s each on 2 cores). Without kaleido or a
    browser nothing is started, and each PNG reports its own problem as before."""
    try:
        import kaleido

        kaleido.start_sync_server(silence_warnings=True)
    except Exception:  # kaleido or Chromium missing: write_charts says why per chart
        yield
        return
    try:
        yield
    finally:
        kaleido.stop_sync_server(silence_warnings=True)


def write_charts(board: Leaderboard, folder: Path) -> tuple[list[Path], str | None]:
    """Write each chart as HTML (and PNG when possible): (files, why PNG was skipped)."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    png_problem: str | None = None
    for name, figure in figures(board).items():
        html = folder / f"{name}.html"
        figure.write_html(html, include_plotlyjs="directory")
        written.append(html)
        if png_problem is None:
            try:
                figure.write_image(
                    folder / f"{name}.png",
                    width=1200,
                    height=700,
                )
                written.append(folder / f"{name}.png")
            except Exception as exc:  # kaleido or a browser missing: HTML still stands
                png_problem = f"PNG charts skipped ({type(exc).__name__}: {exc})".split("\n")[0]
    return written, png_problem
