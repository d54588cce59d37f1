"""`palestra webui`: the web UI (arena battle, side-by-side, direct chat, leaderboard) for
the models a Palestra API serves and for API endpoints; `palestra serve` runs it too.
Its options are `webui.settings.WebUISettings`."""

from __future__ import annotations

from collections.abc import Callable

from palestra.arena.settings import CleaningOptions, RatingOptions
from palestra.cli.options import Parsed, Section, settings_command
from palestra.serve.cluster import ClusterSettings
from palestra.serve.launcher import CLUSTER_WIRED
from palestra.serve.settings import WEBUI_PORT, LogSettings, ServerAddress
from palestra.webui.settings import WebUISettings


def _run(parsed: Parsed) -> None:
    from palestra.serve.runner import Endpoint, reserve, run_servers
    from palestra.webui.settings import build_webui_app

    listen: ServerAddress = parsed["listen"]
    parsed["log"].apply()
    webui: WebUISettings = parsed["webui"]
    cluster: ClusterSettings = parsed["cluster"]
    cluster.check()
    if cluster.token and not webui.api_key:  # the cluster's API server takes its token
        webui = webui.model_copy(update={"api_key": cluster.token})
    sock = reserve(listen.host, listen.port)
    app = build_webui_app(webui, parsed["rating"], parsed["cleaning"])
    port = sock.getsockname()[1]
    status = run_servers(
        [Endpoint("webui", app, listen.host, port, sock=sock)],
        on_started=lambda: print(f"palestra webui: http://{listen.host}:{port}", flush=True),
    )
    if status:
        raise SystemExit(status)


def command() -> Callable[..., None]:
    sections = [
        Section("webui", WebUISettings),
        Section("rating", RatingOptions),
        Section("cleaning", CleaningOptions),
        Section("cluster", ClusterSettings, exclude=CLUSTER_WIRED),
        Section("listen", ServerAddress, defaults={"port": WEBUI_PORT}),
        Section("log", LogSettings, defaults={"log_level": "warning"}),
    ]
    return settings_command(sections, _run)
