"""Token sampling: greedy, top-k, top-p, penalties, seeds and logprobs."""

from __future__ import annotations

import pytest
import torch

from palestra.backends.hf.sampling import TokenSampler, token_logprobs
from palestra.core.errors import InvalidRequestError
from palestra.core.types import SamplingParams

LOGITS = torch.tensor([1.0, 3.0, 2.0, 0.5, -1.0])


def test_temperature_zero_is_argmax() -> None:
    sampler = TokenSampler(SamplingParams(temperature=0))
    assert [sampler.sample(LOGITS) for _ in range(5)] == [1] * 5


def test_top_k_one_is_argmax_even_when_hot() -> None:
    sampler = TokenSampler(SamplingParams(temperature=5.0, top_k=1, seed=0))
    assert {sampler.sample(LOGITS) for _ in range(50)} == {1}


def test_top_p_keeps_the_smallest_nucleus() -> None:
    # probabilities of [3, 2] hold ~0.9 of the mass: p=0.8 keeps exactly those two
    sampler = TokenSampler(SamplingParams(temperature=1.0, top_p=0.8, seed=0))
    assert {sampler.sample(LOGITS) for _ in range(300)} == {1, 2}


def test_seed_makes_sampling_repeatable() -> None:
    def draws(seed: int) -> list[int]:
        sampler = TokenSampler(SamplingParams(seed=seed))
        return [sampler.sample(LOGITS) for _ in range(30)]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)


def test_penalties_lower_seen_tokens() -> None:
    sampler = TokenSampler(
        SamplingParams(temperature=0, presence_penalty=1.0, frequency_penalty=0.5)
    )
    sampler.counts.update({1: 2})
    processed = sampler.process(LOGITS)
    assert processed[1] == pytest.approx(3.0 - 1.0 - 0.5 * 2)
    assert torch.equal(processed[[0, 2, 3, 4]], LOGITS[[0, 2, 3, 4]])


def test_repetition_penalty_divides_positive_and_multiplies_negative() -> None:
    sampler = TokenSampler(SamplingParams(temperature=0, repetition_penalty=2.0))
    sampler.counts.update({1: 1, 4: 1})
    processed = sampler.process(LOGITS)
    assert processed[1] == pytest.approx(1.5) and processed[4] == pytest.approx(-2.0)


def test_penalty_can_change_the_greedy_choice() -> None:
    sampler = TokenSampler(SamplingParams(temperature=0, repetition_penalty=10.0))
    assert sampler.sample(LOGITS) == 1
    assert sampler.sample(LOGITS) == 2  # token 1 is now penalised below token 2


def test_logprobs_and_top_alternatives() -> None:
    chosen, top = token_logprobs(LOGITS, 2, 3)
    expected = torch.log_softmax(LOGITS, dim=-1)
    assert chosen == pytest.approx(float(expected[2]))
    assert [i for i, _ in top] == [1, 2, 0]
    assert top[0][1] >= top[1][1] >= top[2][1]


@pytest.mark.parametrize(
    "bad",
    [
        {"temperature": -1},
        {"top_p": 0},
        {"max_tokens": 0},
        {"top_logprobs": 21},
        {"presence_penalty": 3},
    ],
)
def test_invalid_parameters_name_the_parameter(bad: dict) -> None:
    with pytest.raises(InvalidRequestError) as info:
        SamplingParams(**bad)
    assert info.value.param == next(iter(bad))
