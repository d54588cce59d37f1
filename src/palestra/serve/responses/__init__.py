"""OpenAI's Responses API (`/v1/responses`) over the same workers as chat completions."""
