"""Anthropic's Messages API (`POST /v1/messages`) on Palestra's API server, so clients
written for the `anthropic` SDK use Palestra's models unchanged (as vLLM serves it)."""
