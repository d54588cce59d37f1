"""Serving: a controller that tracks workers, ONE worker app for every backend, and the
OpenAI-compatible API server in front. `wire.py` holds the typed internal protocol they
speak; each app is built by a factory (`build_*_app`) with its state on `app.state`."""
