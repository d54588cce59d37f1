"""vLLM's scoring endpoints, for embedding and cross-encoder (reranker) models:

- `POST /v1/score` (and `/score`): `text_1` against `text_2` (one to one, one to many, or
  pairwise lists of the same length; also under vLLM's newer names `queries` and
  `documents`), answered as a list of `score` objects;
- `POST /v1/rerank` (and `/rerank`, `/v2/rerank`, Jina's and Cohere's shape): `documents`
  ordered by relevance to `query`, the best `top_n`.

A cross-encoder reads each pair together; an embedding model scores the cosine similarity
of the two texts' embeddings. A generative model answers 400."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from palestra.serve.wire import ScoreResponse

router = APIRouter()
Texts = str | Annotated[list[str], Field(min_length=1)]


class ScoringFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    use_activation: bool | None = None  # vLLM: off gives a cross-encoder's raw logits
    activation: bool | None = None  # its older name
    truncate_prompt_tokens: int | None = Field(default=None, ge=-1)  # accepted: pairs are
    # cut to the model's context
    priority: int = 0  # accepted; requests run in arrival order
    user: str | None = None

    @property
    def applies_activation(self) -> bool:
        for value in (self.use_activation, self.activation):
            if value is not None:
                return value
        return True


class ScoreBody(ScoringFields):
    text_1: Texts | None = None
    text_2: Texts | None = None
    queries: Texts | None = None  # vLLM's newer names for text_1 and text_2
    documents: Texts | None = None
    encoding_format: str | None = None  # accepted; scores are numbers

    @model_validator(mode="after")
    def _given(self) -> ScoreBody:
        if (self.text_1 is None) == (self.queries is None) or (self.text_2 is None) == (
            self.documents is None
        ):
            raise ValueError("give text_1 and text_2 (or queries and documents)")
        self.pairs()
        return self

    def pairs(self) -> list[tuple[str, str]]:
        firsts = self.text_1 if self.text_1 is not None else self.queries
        seconds = self.text_2 if self.text_2 is not None else self.documents
        left = [firsts] if isinstance(firsts, str) else list(firsts or [])
        right = [seconds] if isinstance(seconds, str) else list(seconds or [])
        if len(left) == 1:
            return [(left[0], text) for text in right]
        if len(left) != len(right):
            raise ValueError(
                f"text_1 has {len(left)} texts and text_2 {len(right)}: give one text_1, or "
                "as many as text_2"
            )
        return list(zip(left, right, strict=True))


class Document(BaseModel):
    text: str


class RerankBody(ScoringFields):
    query: str
    documents: Annotated[list[str | Document], Field(min_length=1)]
    top_n: int = Field(default=0, ge=0)  # 0: every document
    return_documents: bool = True
    max_tokens_per_doc: int | None = Field(default=None, ge=1)  # Cohere's; accepted
    rank_fields: list[str] | None = None  # Cohere v1 structured documents; accepted

    def texts(self) -> list[str]:
        return [d.text if isinstance(d, Document) else d for d in self.documents]


async def _scores(
    request: Request, body: ScoringFields, pairs: list[tuple[str, str]]
) -> ScoreResponse:
    payload = {"model": body.model, "pairs": pairs, "activation": body.applies_activation}
    answer = await request.app.state.upstream.call(body.model, "/score", payload)
    return ScoreResponse.model_validate(answer)


@router.post("/v1/score")
@router.post("/score", include_in_schema=False)
async def score(body: ScoreBody, request: Request) -> dict[str, Any]:
    answer = await _scores(request, body, body.pairs())
    return {
        "id": f"score-{uuid.uuid4().hex}",
        "object": "list",
        "created": int(time.time()),
        "model": body.model,
        "data": [
            {"index": index, "object": "score", "score": value}
            for index, value in enumerate(answer.scores)
        ],
        "usage": {"prompt_tokens": answer.prompt_tokens, "total_tokens": answer.prompt_tokens},
    }


@router.post("/v1/rerank")
@router.post("/rerank", include_in_schema=False)
@router.post("/v2/rerank", include_in_schema=False)
async def rerank(body: RerankBody, request: Request) -> dict[str, Any]:
    texts = body.texts()
    answer = await _scores(request, body, [(body.query, text) for text in texts])
    ranked = sorted(range(len(texts)), key=lambda i: answer.scores[i], reverse=True)
    results = []
    for index in ranked[: body.top_n or None]:
        result: dict[str, Any] = {"index": index, "relevance_score": answer.scores[index]}
        if body.return_documents:
            result["document"] = {"text": texts[index]}
        results.append(result)
    return {
        "id": f"rerank-{uuid.uuid4().hex}",
        "model": body.model,
        "usage": {"total_tokens": answer.prompt_tokens},
        "results": results,
    }
