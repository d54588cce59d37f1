"""A tool definition in OpenAI's shape, shared by the tests that send tools to the
provider stand-ins (the stand-ins call it with `{"text": <the user's message>}`)."""

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
    },
}
