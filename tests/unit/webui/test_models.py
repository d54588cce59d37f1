"""The web UI's model directory against a served model list on loopback: listing, cards,
endpoints, and no HTTP call from the paths async handlers use."""

from __future__ import annotations

import json
from pathlib import Path

from palestra.backends.remote import load_endpoint_file
from palestra.webui.models import ModelDirectory
from tests.fakes.openai_server import build_openai_app
from tests.fakes.server import serve_in_thread


def test_directory_lists_served_models_and_endpoints(tmp_path: Path) -> None:
    app = build_openai_app()
    app.state.models = ["palestra-tiny", "other"]
    with serve_in_thread(app) as url:
        file = tmp_path / "endpoints.json"
        file.write_text(
            json.dumps(
                {
                    "secret-model": {
                        "model_name": "x",
                        "api_base": url + "/v1",
                        "anony_only": True,
                    },
                    "eyes": {"model_name": "y", "api_base": url + "/v1", "vision-arena": True},
                }
            )
        )
        directory = ModelDirectory(url + "/v1", load_endpoint_file(file), refresh_seconds=0)
        assert directory.chat_models() == ["eyes", "other", "palestra-tiny"]  # anony_only hidden
        assert directory.battle_models() == ["eyes", "other", "palestra-tiny", "secret-model"]
        assert directory.battle_models(vision=True) == ["eyes"]
        assert "3.7M-parameter" in directory.get("palestra-tiny").card  # from the registry
        assert directory.get("other").card.startswith("served by Palestra")
        listings = app.state.listings
        app.state.models = ["palestra-tiny", "other", "newcomer"]
        directory.get("other")
        directory.battle_models()
        assert app.state.listings == listings  # async paths answer from the last listing
        assert "newcomer" in directory.chat_models()  # a page load lists again
        assert app.state.listings == listings + 1
