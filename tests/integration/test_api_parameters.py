"""Every Chat Completions parameter of OpenAI's reference and vLLM's extras against the
bundled model (controller, worker, API server): each request is a 200, and each parameter
with an effect shows it (greedy decoding makes the effects exact)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.cluster import Process

MODEL = "palestra-tiny"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
ANSWER = "The capital of France is Paris."


@pytest.fixture(scope="module")
def api(stack: dict[str, Process]) -> str:
    return stack["api"].url


def chat(api: str, **fields: Any) -> dict[str, Any]:
    body = {"model": MODEL, "messages": QUESTION, "temperature": 0, **fields}
    response = httpx.post(f"{api}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def text(reply: dict[str, Any]) -> str:
    return reply["choices"][0]["message"]["content"]


def token_ids(api: str, words: str) -> list[int]:
    response = httpx.post(f"{api}/tokenize", json={"model": MODEL, "prompt": words}, timeout=30)
    return list(response.json()["tokens"])


# Parameters of OpenAI's reference whose effect is elsewhere (a hosted provider, a hint) or
# none for a local text model: each is accepted with a 200 and the same greedy answer.
ACCEPTED = {
    "reasoning_effort": "low",
    "service_tier": "auto",
    "verbosity": "low",
    "modalities": ["text"],
    "prediction": {"type": "content", "content": ANSWER},
    "prompt_cache_key": "user-42",
    "prompt_cache_retention": "24h",
    "safety_identifier": "hashed-user",
    "metadata": {"purpose": "test"},
    "store": False,
    "user": "someone",
    "parallel_tool_calls": True,
    "spaces_between_special_tokens": False,
    "logprobs": False,
    "stream_options": None,
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_openai_parameters_are_accepted(api: str, name: str) -> None:
    assert text(chat(api, **{name: ACCEPTED[name]})) == ANSWER


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"modalities": ["text", "audio"]}, "audio output is not supported"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio output is not supported"),
        ({"web_search_options": {}}, "does not search the web"),
        ({"logit_bias": {"12": 101}}, "logit_bias"),
        ({"min_p": 1.5}, "min_p"),
        ({"chat_template_kwargs": {"messages": []}}, "may not set messages"),
        ({"continue_final_message": True}, "add_generation_prompt: false"),
        ({"no_such_parameter": 1}, "no_such_parameter"),
    ],
)
def test_what_no_model_here_can_do_is_a_clear_400(
    api: str, fields: dict[str, Any], message: str
) -> None:
    body = {"model": MODEL, "messages": QUESTION, **fields}
    response = httpx.post(f"{api}/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


def test_logit_bias_bans_and_forces_tokens(api: str) -> None:
    first = token_ids(api, "The")[0]
    banned = text(chat(api, logit_bias={str(first): -100}))
    assert banned and not banned.startswith("The")
    paris = token_ids(api, "Paris")[0]
    forced = chat(api, logit_bias={str(paris): 100}, max_tokens=3)
    assert text(forced).startswith("Paris")


def test_min_tokens_forces_length_and_stop_token_ids_stop(api: str) -> None:
    short = chat(api)
    assert short["choices"][0]["finish_reason"] == "stop"
    needed = short["usage"]["completion_tokens"] + 6
    longer = chat(api, min_tokens=needed, max_tokens=needed)
    assert longer["usage"]["completion_tokens"] == needed
    assert text(longer).startswith(ANSWER)
    assert longer["choices"][0]["finish_reason"] == "length"

    france = token_ids(api, " France")[0]
    stopped = chat(api, stop_token_ids=[france])
    assert text(stopped) == "The capital of"
    assert stopped["choices"][0]["finish_reason"] == "stop"


def test_stop_strings_kept_or_not(api: str) -> None:
    assert text(chat(api, stop=["Paris"])) == "The capital of France is "
    assert text(chat(api, stop=["Paris"], include_stop_str_in_output=True)) == (
        "The capital of France is Paris"
    )
    # min_tokens holds stop strings back too
    assert text(chat(api, stop=["capital"], min_tokens=4)).startswith("The capital of")


def test_min_p_keeps_only_the_likeliest(api: str) -> None:
    """min_p 1 keeps only the likeliest token: sampling at temperature 1 is then greedy."""
    for _ in range(3):
        assert text(chat(api, temperature=1.0, min_p=1.0, seed=None)) == ANSWER


def test_legacy_functions_are_tools(api: str) -> None:
    """OpenAI's deprecated functions / function_call: a forced call, as with tools."""
    country = {"type": "string", "enum": ["France", "Italy"]}
    parameters = {"type": "object", "properties": {"country": country},
                  "required": ["country"], "additionalProperties": False}  # fmt: skip
    function = {"name": "capital", "parameters": parameters}
    reply = chat(api, functions=[function], function_call={"name": "capital"}, max_tokens=60)
    (call,) = reply["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "capital"
    assert reply["choices"][0]["finish_reason"] == "tool_calls"


def test_generation_prompt_continuation_and_echo(api: str) -> None:
    """add_generation_prompt false renders no assistant opening (fewer prompt tokens);
    continue_final_message continues the last assistant message, and echo gives it back
    in front of the continuation."""
    with_opening = chat(api, max_tokens=1)["usage"]["prompt_tokens"]
    without = chat(api, add_generation_prompt=False, max_tokens=1)["usage"]["prompt_tokens"]
    assert without < with_opening
    started = [*QUESTION, {"role": "assistant", "content": "The capital of France"}]
    continued = chat(
        api, messages=started, add_generation_prompt=False, continue_final_message=True
    )
    assert text(continued) == " is Paris."
    echoed = chat(
        api, messages=started, add_generation_prompt=False, continue_final_message=True,
        echo=True,
    )  # fmt: skip
    assert text(echoed) == ANSWER


def test_extras_on_text_completions(api: str) -> None:
    body = {"model": MODEL, "prompt": "The capital of France is", "temperature": 0,
            "max_tokens": 8, "min_tokens": 8, "stop_token_ids": [], "min_p": 0.5}  # fmt: skip
    response = httpx.post(f"{api}/v1/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] == 8


@pytest.mark.parametrize(
    "fields",
    [
        {"structured_outputs": {"regex": "Paris|Rome|Oslo"}},
        {"guided_regex": "Paris|Rome|Oslo"},
        {"structured_outputs": {"choice": ["Paris", "Rome", "Oslo"]}},
        {"guided_choice": ["Paris", "Rome", "Oslo"]},
        {"structured_outputs": {"grammar": 'start: "Paris" | "Rome" | "Oslo"'}},
        {"guided_grammar": 'start: "Paris" | "Rome" | "Oslo"'},
    ],
)
def test_structured_outputs_beyond_json(api: str, fields: dict[str, Any]) -> None:
    """vLLM's regex, choice and grammar, current and guided_* names: the reply is exactly
    one of the allowed strings (greedy: the one the model likes best)."""
    reply = chat(api, max_tokens=10, **fields)
    assert text(reply) == "Paris" and reply["choices"][0]["finish_reason"] == "stop"


def test_structured_json_and_conflicts(api: str) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris"]}},
              "required": ["city"], "additionalProperties": False}  # fmt: skip
    for fields in ({"guided_json": schema}, {"structured_outputs": {"json": schema}}):
        assert text(chat(api, max_tokens=20, **fields)) == '{"city":"Paris"}'
    both = {"model": MODEL, "messages": QUESTION, "guided_regex": "a", "guided_choice": ["b"]}
    response = httpx.post(f"{api}/v1/chat/completions", json=both, timeout=30)
    assert response.status_code == 400 and "not regex and choice" in response.text
    bad = {"model": MODEL, "messages": QUESTION, "guided_regex": "(unclosed"}
    response = httpx.post(f"{api}/v1/chat/completions", json=bad, timeout=30)
    assert response.status_code == 400 and "invalid regex" in response.text


def _own_logprobs(ids: list[int]) -> list[float]:
    """Each prompt token's logprob given the ones before it, computed here."""
    import torch
    from transformers import AutoModelForCausalLM

    from palestra.models.inspect import bundled_model_path

    model = AutoModelForCausalLM.from_pretrained(bundled_model_path()).eval()
    with torch.inference_mode():
        logprobs = model(input_ids=torch.tensor([ids])).logits[0].log_softmax(-1)
    return [float(logprobs[i - 1, ids[i]]) for i in range(1, len(ids))]


def test_prompt_logprobs(api: str) -> None:
    ids = token_ids(api, "The capital of France is Paris.")
    body = {"model": MODEL, "prompt": ids, "max_tokens": 2, "temperature": 0,
            "prompt_logprobs": 0}  # fmt: skip
    completion = httpx.post(f"{api}/v1/completions", json=body, timeout=60).json()
    entries = completion["choices"][0]["prompt_logprobs"]
    assert entries[0] is None and len(entries) == len(ids)
    assert [list(entry) for entry in entries[1:]] == [[str(i)] for i in ids[1:]]
    values = [entry[str(i)]["logprob"] for entry, i in zip(entries[1:], ids[1:], strict=True)]
    assert values == pytest.approx(_own_logprobs(ids), abs=1e-3)
    # chat: once per response; the prompt's own token and the two likeliest at each place
    reply = chat(api, max_tokens=2, prompt_logprobs=2)
    rendered = reply["prompt_logprobs"]
    assert len(rendered) == reply["usage"]["prompt_tokens"] and rendered[0] is None
    for entry in rendered[1:]:
        ranks = sorted(item["rank"] for item in entry.values())
        assert ranks[:2] == [1, 2] and 2 <= len(entry) <= 3
    streamed = {"model": MODEL, "messages": QUESTION, "stream": True, "prompt_logprobs": 1}
    refused = httpx.post(f"{api}/v1/chat/completions", json=streamed, timeout=30)
    assert refused.status_code == 400 and "not with stream" in refused.text
