"""The OpenAI-compatible API server: `/v1/models`, `/v1/chat/completions`,
`/v1/completions`, `/v1/embeddings`, plus `/tokenize`, `/detokenize` and `/health`.
One module per endpoint group; `upstream.py` is the only one that talks to the cluster."""
