"""`build_worker_app`: the worker's HTTP API, the same for every backend.

    POST /generate    GenerateRequest -> NDJSON stream of ChunkMessage (or an error line)
    POST /embed       EmbedRequest -> EmbedResponse;  POST /score  ScoreRequest -> ScoreResponse
    POST /tokenize    TokenizeRequest -> TokenizeResponse;  POST /detokenize
    GET  /status      WorkerStatus (models, capacity, queue length);  GET /health
    GET  /metrics     Prometheus: requests, errors, and for /generate the time to first
                      token from the request's arrival here (the API server's own figure
                      less this one is what the hop between them costs) and the speed

Validation (unknown model, context overflow, bad sampling values) answers before the
stream starts, with the right status; an error mid-stream becomes a final error line.
With a cluster token (`serve/cluster.py`) every route but /health needs it, and answers
prove it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from palestra.backends.pacing import paced
from palestra.core.errors import InvalidRequestError, PalestraError, error_envelope
from palestra.core.types import EVERY_TOKEN, GenerationRequest, Pacing
from palestra.serve.cluster import ClusterSettings, RequireClusterToken
from palestra.serve.disconnect import unless_disconnected
from palestra.serve.http_errors import ERROR_RESPONSES, install_error_handlers
from palestra.serve.metrics import ServingMetrics, install_metrics
from palestra.serve.wire import (
    ChunkMessage,
    DetokenizeRequest,
    EmbedRequest,
    EmbedResponse,
    GenerateRequest,
    ModelStatus,
    RegisterRequest,
    ScoreRequest,
    ScoreResponse,
    TokenizeRequest,
    TokenizeResponse,
    WorkerStatus,
)
from palestra.serve.worker.keep_alive import KeepAlive
from palestra.serve.worker.models import ModelTable, ServedModel
from palestra.serve.worker.registration import keep_registered

T = TypeVar("T")


@dataclass(frozen=True)
class WorkerIdentity:
    """Where this worker is reached and whom it reports to (resolved from the settings)."""

    address: str  # what the controller and API server call back
    controller: str | None = None  # None: run standalone, no registration
    heartbeat_interval: float = 10.0


def _prepared(
    model: ServedModel, body: GenerateRequest | TokenizeRequest, **fields: Any
) -> GenerationRequest:
    """The body's conversation, token ids or raw prompt, as the backend runs it (a local
    backend renders the conversation)."""
    prompt_ids = tuple(getattr(body, "prompt_token_ids", None) or ()) or None
    conversation = None if prompt_ids else body.conversation()
    if conversation is None and body.prompt is None and not prompt_ids:
        raise InvalidRequestError("give messages or prompt", param="prompt")
    return model.backend.prepare(
        GenerationRequest(
            prompt=body.prompt or "",
            prompt_token_ids=prompt_ids,
            conversation=conversation,
            **fields,
        )
    )


def _token_budget(model: ServedModel, prompt_tokens: int, requested: int | None) -> int:
    context = model.backend.context_length
    if requested is not None and requested < 1:
        raise InvalidRequestError(
            f"max_tokens must be >= 1, got {requested}", param="max_tokens", code="invalid_value"
        )
    if prompt_tokens >= context or (requested and prompt_tokens + requested > context):
        asked = f" + {requested} requested new tokens" if requested else ""
        raise InvalidRequestError(
            f"this model's context is {context} tokens; the prompt has {prompt_tokens} "
            f"tokens{asked}. Shorten the prompt or lower max_tokens",
            param="max_tokens" if requested else "messages",
            code="context_length_exceeded",
        )
    return requested or context - prompt_tokens


def build_worker_app(
    settings: WorkerIdentity,
    table: ModelTable,
    cluster: ClusterSettings | None = None,
    *,
    pacing: Pacing = EVERY_TOKEN,
) -> FastAPI:
    def registration() -> RegisterRequest:
        return RegisterRequest(
            address=settings.address,
            models=sorted(table.models),
            vision_models=sorted(n for n, m in table.models.items() if m.backend.accepts_images),
            capacity=table.capacity,
            queue_length=table.queue_length,
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = None
        if settings.controller:
            task = asyncio.create_task(
                keep_registered(
                    settings.controller,
                    registration,
                    heartbeat_interval=settings.heartbeat_interval,
                    client_options=cluster.client_options() if cluster else None,
                )
            )
        watchers = [  # --keep-alive: unload idle models
            asyncio.create_task(backend.watch())
            for backend in {id(m.backend): m.backend for m in table.models.values()}.values()
            if isinstance(backend, KeepAlive)
        ]
        yield
        for watcher in watchers:
            watcher.cancel()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for backend in {id(m.backend): m.backend for m in table.models.values()}.values():
            await backend.close()

    app = FastAPI(title="Palestra worker", lifespan=lifespan, responses=ERROR_RESPONSES)
    app.state.settings = settings
    app.state.models = table
    install_error_handlers(app)
    if cluster is not None and cluster.token:
        app.add_middleware(RequireClusterToken, token=cluster.token)
    metrics = ServingMetrics("palestra_worker")

    async def refresh_queue_length() -> None:
        metrics.queue_length.set(table.queue_length)

    install_metrics(app, metrics, refresh_queue_length)

    @app.post("/generate")
    async def generate(body: GenerateRequest, http_request: Request) -> StreamingResponse:
        received = time.monotonic()  # the worker's share of the first token's wait
        model = table.get(body.model)
        release_model = await model.backend.hold()
        try:
            requested = body.sampling.max_tokens
            prepared = _prepared(
                model,
                body,
                sampling=body.sampling.to_params(requested or 1),  # the budget comes next
                request_id=body.request_id,
                adapter=model.adapter,
                pacing=pacing,
            )
            budget = _token_budget(model, model.backend.prompt_tokens(prepared), requested)
            request = replace(prepared, sampling=replace(prepared.sampling, max_tokens=budget))
            prompt = request.prompt
            model.backend.check(request.sampling)
            ticket = await unless_disconnected(
                http_request, model.admission.acquire(), abandon=lambda held: held.release()
            )
        except BaseException:
            release_model()
            raise

        def release() -> None:
            ticket.release()
            release_model()

        async def lines() -> AsyncIterator[bytes]:
            source = model.backend.generate(request)
            stream = paced(source, pacing.tokens)  # the engines pace time themselves
            first = True
            first_token: float | None = None
            try:
                async for chunk in stream:
                    message = ChunkMessage.from_chunk(chunk, prompt if first else None)
                    first = False
                    first_token = metrics.chunk_streamed(received, first_token, message)
                    yield (message.model_dump_json(exclude_defaults=True) + "\n").encode()
            except PalestraError as exc:  # the status travels with the envelope
                yield (_json({**error_envelope(exc), "status": exc.http_status}) + "\n").encode()
            except Exception as exc:  # one request's crash never takes the worker down
                error = PalestraError(f"generation failed: {type(exc).__name__}: {exc}")
                yield (_json(error_envelope(error)) + "\n").encode()
            finally:
                with contextlib.suppress(Exception):
                    await stream.aclose()  # type: ignore[attr-defined]
                with contextlib.suppress(Exception):
                    await source.aclose()  # type: ignore[attr-defined]
                release()

        return StreamingResponse(
            lines(), media_type="application/x-ndjson", background=BackgroundTask(release)
        )

    async def admitted(model: ServedModel, work: Callable[[], Awaitable[T]]) -> T:
        """`work()` with the model held loaded and one of its admission slots taken."""
        release_model = await model.backend.hold()
        try:
            ticket = await model.admission.acquire()
            try:
                return await work()
            finally:
                ticket.release()
        finally:
            release_model()

    @app.post("/embed")
    async def embed(body: EmbedRequest) -> EmbedResponse:
        model = table.get(body.model)
        if not body.input or any(not text for text in body.input):
            raise InvalidRequestError(
                "input must be a non-empty list of non-empty strings", param="input"
            )
        vectors = await admitted(model, lambda: model.backend.embed(body.input))
        tokens = sum(model.backend.count_tokens(text) for text in body.input)
        return EmbedResponse(embeddings=vectors, prompt_tokens=tokens)

    @app.post("/score")
    async def score(body: ScoreRequest) -> ScoreResponse:
        model = table.get(body.model)
        if not body.pairs:
            raise InvalidRequestError("no text pairs to score", param="pairs")
        scores = await admitted(model, lambda: model.backend.score(body.pairs, body.activation))
        tokens = sum(model.backend.count_tokens(a) + model.backend.count_tokens(b)
                     for a, b in body.pairs)  # fmt: skip
        return ScoreResponse(scores=scores, prompt_tokens=tokens)

    @app.post("/tokenize")
    async def tokenize(body: TokenizeRequest) -> TokenizeResponse:
        model = table.get(body.model)
        release_model = await model.backend.hold()
        try:
            ids = model.backend.tokenize(_prepared(model, body).prompt)
        finally:
            release_model()
        return TokenizeResponse(
            tokens=ids, count=len(ids), max_model_len=model.backend.context_length
        )

    @app.post("/detokenize")
    async def detokenize(body: DetokenizeRequest) -> dict[str, str]:
        model = table.get(body.model)
        release_model = await model.backend.hold()
        try:
            return {"prompt": model.backend.detokenize(body.tokens)}
        finally:
            release_model()

    @app.get("/status")
    async def status() -> WorkerStatus:
        return WorkerStatus(
            address=settings.address,
            models=[
                ModelStatus(
                    name=m.name,
                    backend=m.backend.name,
                    context_length=m.backend.context_length,
                    template=m.backend.template.name,
                )
                for m in table.models.values()
            ],
            capacity=table.capacity,
            queue_length=table.queue_length,
        )

    @app.get("/health")
    async def health() -> dict[str, Any]:
        details = [(await m.backend.health()) for m in table.models.values()]
        return {
            "status": "ok" if all(d.ok for d in details) else "degraded",
            "models": [d.detail for d in details],
        }

    return app


def _json(data: Any) -> str:
    import json

    return json.dumps(data, ensure_ascii=False)
