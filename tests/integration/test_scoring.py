"""vLLM's scoring endpoints on encoder models built by the tests: a tiny BERT cross-encoder
(a reranker: `BertForSequenceClassification` with one label) and a tiny BERT embedding
model, served by one worker beside a small random Llama. `/v1/rerank` (and Jina's and
Cohere's paths) orders documents by the cross-encoder's own scores; `/v1/score` pairs
texts one to many and pairwise, and on an embedding model scores the cosine similarity
of the vectors `/v1/embeddings` returns; generative and encoder models refuse what they
cannot do with a 400 that says what to use."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.cluster import Cluster, Process, registered, wait_for

QUERY = "What is the capital of France?"
DOCUMENTS = ["The capital of France is Paris.", "Cows eat grass.", "Snow is white and cold."]


def _encoders(tokenizer_dir: Path, folder: Path) -> tuple[Path, Path]:
    import torch
    from transformers import (
        AutoTokenizer,
        BertConfig,
        BertForSequenceClassification,
        BertModel,
    )

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, pad_token_id=0, num_labels=1,
    )  # fmt: skip
    torch.manual_seed(0)
    reranker, embedder = folder / "tiny-reranker", folder / "tiny-embedder"
    BertForSequenceClassification(config).save_pretrained(reranker)
    BertModel(config).save_pretrained(embedder)
    for target in (reranker, embedder):
        tokenizer.save_pretrained(target)
    return reranker, embedder


@pytest.fixture(scope="module")
def reranker_dir(random_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _encoders(random_llama_dir, tmp_path_factory.mktemp("encoders"))[0]


@pytest.fixture(scope="module")
def api(reranker_dir: Path, random_llama_dir: Path) -> Iterator[Process]:
    cluster = Cluster()
    try:
        controller = cluster.controller()
        cluster.worker(
            controller.url,
            *("--model-path", str(reranker_dir)),
            *("--model-path", str(reranker_dir.with_name("tiny-embedder"))),
            *("--model-path", str(random_llama_dir)),
        )
        wait_for(registered(controller, 1), 30, "worker registration")
        yield cluster.api(controller.url)
    finally:
        cluster.stop()


def _post(api: Process, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{api.url}{path}", json=body, timeout=60)


def _own_scores(reranker_dir: Path, pairs: list[tuple[str, str]]) -> list[float]:
    """The cross-encoder's sigmoid scores, computed here with transformers directly."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(reranker_dir)
    model = AutoModelForSequenceClassification.from_pretrained(reranker_dir).eval()
    encoded = tokenizer([a for a, _ in pairs], [b for _, b in pairs], padding=True,
                        return_tensors="pt")  # fmt: skip
    with torch.inference_mode():
        return model(**encoded).logits[:, 0].sigmoid().tolist()


def test_rerank_orders_documents_by_the_cross_encoders_scores(
    api: Process, reranker_dir: Path
) -> None:
    expected = _own_scores(reranker_dir, [(QUERY, d) for d in DOCUMENTS])
    order = sorted(range(3), key=lambda i: expected[i], reverse=True)
    answer = _post(api, "/v1/rerank", {"model": "tiny-reranker", "query": QUERY,
                                       "documents": DOCUMENTS, "top_n": 2})  # fmt: skip
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["index"] for r in results] == order[:2]
    for result in results:
        assert result["relevance_score"] == pytest.approx(expected[result["index"]], abs=1e-4)
        assert result["document"]["text"] == DOCUMENTS[result["index"]]
    assert answer.json()["usage"]["total_tokens"] > 10
    # Cohere's v2 path, documents as objects, no documents echoed
    cohere = _post(api, "/v2/rerank", {"model": "tiny-reranker", "query": QUERY,
                                       "documents": [{"text": d} for d in DOCUMENTS],
                                       "return_documents": False})  # fmt: skip
    assert [r["index"] for r in cohere.json()["results"]] == order
    assert all("document" not in r for r in cohere.json()["results"])


def test_score_pairs_one_to_many_and_pairwise(api: Process, reranker_dir: Path) -> None:
    one_to_many = _post(api, "/v1/score", {"model": "tiny-reranker", "text_1": QUERY,
                                           "text_2": DOCUMENTS})  # fmt: skip
    assert one_to_many.status_code == 200, one_to_many.text
    data = one_to_many.json()["data"]
    assert [d["index"] for d in data] == [0, 1, 2] and data[0]["object"] == "score"
    expected = _own_scores(reranker_dir, [(QUERY, d) for d in DOCUMENTS])
    assert [d["score"] for d in data] == pytest.approx(expected, abs=1e-4)
    pairwise = _post(
        api,
        "/score",
        {
            "model": "tiny-reranker",
            "queries": DOCUMENTS[:2],
            "documents": DOCUMENTS[1:],
            "use_activation": False,
        },
    )
    pair_logits = [d["score"] for d in pairwise.json()["data"]]
    own = _own_scores(reranker_dir, list(itertools.pairwise(DOCUMENTS)))
    assert [1 / (1 + pow(2.718281828459045, -x)) for x in pair_logits] == pytest.approx(
        own, abs=1e-4
    )  # raw logits without the activation
    mismatched = _post(api, "/v1/score", {"model": "tiny-reranker", "text_1": DOCUMENTS[:2],
                                          "text_2": DOCUMENTS})  # fmt: skip
    assert mismatched.status_code == 400 and "as many as text_2" in mismatched.text


def test_an_embedding_model_scores_cosine_similarity(api: Process) -> None:
    texts = [QUERY, DOCUMENTS[0]]
    vectors = _post(api, "/v1/embeddings", {"model": "tiny-embedder", "input": texts}).json()
    u, v = (item["embedding"] for item in vectors["data"])
    scored = _post(api, "/v1/score", {"model": "tiny-embedder", "text_1": QUERY,
                                      "text_2": DOCUMENTS[0]}).json()  # fmt: skip
    assert scored["data"][0]["score"] == pytest.approx(
        sum(a * b for a, b in zip(u, v, strict=True)), abs=1e-5
    )


def test_each_model_refuses_what_it_cannot_do(api: Process) -> None:
    chat = _post(
        api,
        "/v1/chat/completions",
        {
            "model": "tiny-reranker",
            "max_tokens": 3,
            "messages": [{"role": "user", "content": "Hi"}],
        },
    )
    assert chat.status_code == 400 and "does not write text" in chat.text
    embed = _post(api, "/v1/embeddings", {"model": "tiny-reranker", "input": "Hi"})
    assert embed.status_code == 400 and "cross-encoder" in embed.text
    rerank = _post(api, "/v1/rerank", {"model": "random-llama", "query": QUERY,
                                       "documents": DOCUMENTS})  # fmt: skip
    assert rerank.status_code == 400 and "embedding or cross-encoder" in rerank.text
