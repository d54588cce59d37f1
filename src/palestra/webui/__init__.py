"""The web UI (Gradio): direct chat, anonymous arena battles, named side-by-side, the
leaderboard; and what it needs: model directory, streaming, safety."""
