"""Palestra: an open platform to train, serve and evaluate LLM chatbots.

This top-level package imports nothing heavy; each room (core, templates, models,
backends, cli, ...) is imported where it is used.
"""

__version__ = "0.1.0"
