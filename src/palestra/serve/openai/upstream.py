"""`Upstream`: the API server's typed client for the controller and workers.

A generation asks the controller for a worker (over HTTP; when the controller runs in
this process, as in `palestra serve`, its table directly: no round trip through the event
loop they share), opens the worker's stream and reads the first line; if the worker is
unreachable, overloaded or fails before that first line, the request goes to another
worker serving the same model (the dead one is reported to the controller). After the
first line, a failure ends the stream with an error.

Generation streams, the hot path (a line per frame, a stream per request), are read with
aiohttp, whose C parser costs about a third of httpx's CPU per line (benchmarks/README.md);
the other calls use httpx.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import httpx

from palestra.core.errors import (
    BackendError,
    NoWorkerError,
    PalestraError,
    RetryLaterError,
    error_from_envelope,
)
from palestra.serve.cluster import NONCE_HEADER, PROOF_HEADER, ClusterSettings, new_nonce, proves
from palestra.serve.controller.table import WORKER_LEFT, WorkerTable
from palestra.serve.wire import ChunkMessage, DispatchResponse, ModelList

logger = logging.getLogger(__name__)
RETRYABLE = {429, 500, 502, 503, 504}


class Upstream:
    def __init__(
        self,
        controller: str,
        *,
        cluster: ClusterSettings | None = None,
        timeout: float = 600.0,
        max_attempts: int = 3,
        local: WorkerTable | None = None,
    ):
        self.controller = controller.rstrip("/")
        self.local = local  # the controller's own table, when it runs in this process
        self.max_attempts = max_attempts
        self.token = cluster.token if cluster else None
        # One connection per open stream: no pool cap, or the 101st concurrent client
        # would wait for a stream to end before its request even reached a worker.
        options = cluster.client_options() if cluster else {}
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=5.0),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            **options,
        )
        self._stream_headers: dict[str, str] = options.get("headers") or {}
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=5.0, sock_read=timeout
        )
        self._stream_tls = options.get("verify", True)  # the cluster's CA, if it has one
        self._streams: aiohttp.ClientSession | None = None

    def _stream_session(self) -> aiohttp.ClientSession:
        """One session (connection pool, no cap) for every generation stream."""
        if self._streams is None or self._streams.closed:
            connector = aiohttp.TCPConnector(limit=0, ssl=self._stream_tls)
            self._streams = aiohttp.ClientSession(
                connector=connector, headers=self._stream_headers, timeout=self._stream_timeout
            )
        return self._streams

    def _challenge(self) -> dict[str, str]:
        """A fresh nonce for a worker to answer, with the cluster token."""
        return {NONCE_HEADER: new_nonce()} if self.token else {}

    async def _impostor(
        self, address: str, nonce: dict[str, str], headers: Mapping[str, str]
    ) -> PalestraError | None:
        """An answer that does not prove the cluster token is not a worker's: the address
        is reported and the request goes to another worker (the caller closes the answer)."""
        if not self.token or proves(self.token, nonce[NONCE_HEADER], headers.get(PROOF_HEADER)):
            return None
        await self.report_dead(address)
        logger.warning("%s answered without proving the cluster token; dropped", address)
        return BackendError(
            f"worker {address} did not prove the cluster token", code="worker_unverified"
        )

    async def close(self) -> None:
        await self.client.aclose()
        if self._streams is not None:
            await self._streams.close()

    async def _controller(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self.client.request(method, f"{self.controller}{path}", **kwargs)
        except httpx.TransportError as exc:
            raise NoWorkerError(
                f"controller {self.controller} is unreachable ({exc}); is "
                "`palestra controller` running?"
            ) from exc
        if response.status_code == 401:  # the cluster's misconfiguration, not the user's
            error = _upstream_error(response.status_code, response.headers, await response.aread())
            raise NoWorkerError(f"controller {self.controller} refused this API server: {error}")
        return _json_or_raise(response, await response.aread())

    async def workers(self) -> list[dict[str, Any]]:
        """The controller's worker table."""
        if self.local is not None:
            return [row.model_dump() for row in self.local.rows()]
        rows: list[dict[str, Any]] = await self._controller("GET", "/workers")
        return rows

    async def models(self) -> list[str]:
        return (await self.model_list()).models

    async def model_list(self) -> ModelList:
        """Served models, and which of them accept images."""
        if self.local is not None:
            return ModelList(models=self.local.models(), vision_models=self.local.vision_models())
        return ModelList.model_validate(await self._controller("GET", "/models"))

    async def dispatch(
        self, model: str, exclude: list[str], last: PalestraError | None = None
    ) -> str:
        """A worker for `model`; once every worker was tried, the last worker's error."""
        try:
            if self.local is not None:
                return self.local.pick(model, exclude)
            body = await self._controller(
                "POST", "/dispatch", json={"model": model, "exclude": exclude}
            )
        except NoWorkerError as unavailable:
            if last is None:
                raise
            if unavailable.code == WORKER_LEFT:  # its last worker just failed and was dropped
                raise NoWorkerError(
                    f"no live worker serves {model!r} now; the last one failed: {last.message}",
                    code="no_worker",
                    retry_after=unavailable.retry_after,
                ) from None
            raise last from None  # each worker was tried: the last one's error
        return DispatchResponse.model_validate(body).address

    async def report_dead(self, address: str) -> None:
        if self.local is not None:
            if self.local.drop(address):
                logger.warning("worker %s dropped after a failed request", address)
            return
        try:
            await self.client.post(
                f"{self.controller}/workers/drop", json={"address": address, "queue_length": 0}
            )
        except httpx.HTTPError:
            logger.warning("could not report dead worker %s", address)

    async def call(self, model: str, path: str, payload: dict[str, Any]) -> Any:
        """A plain JSON call to a worker serving `model` (embed, tokenize...)."""
        exclude: list[str] = []
        last: PalestraError | None = None
        for _ in range(self.max_attempts):
            address = await self.dispatch(model, exclude, last)
            nonce = self._challenge()
            try:
                response = await self.client.post(f"{address}{path}", json=payload, headers=nonce)
            except httpx.TransportError as exc:
                await self.report_dead(address)
                exclude.append(address)
                last = BackendError(f"worker {address} unreachable: {exc}")
                continue
            impostor = await self._impostor(address, nonce, response.headers)
            if impostor is not None:
                exclude.append(address)
                last = impostor
                continue
            if response.status_code in RETRYABLE:
                exclude.append(address)
                last = _upstream_error(response.status_code, response.headers, response.content)
                continue
            return _json_or_raise(response, response.content)
        raise last or NoWorkerError(f"no worker could serve {model!r}")

    async def generate(self, model: str, payload: dict[str, Any]) -> AsyncIterator[ChunkMessage]:
        """Open a generation stream; errors before its first chunk raise here, typed."""
        exclude: list[str] = []
        last: PalestraError | None = None
        for _ in range(self.max_attempts):
            address = await self.dispatch(model, exclude, last)
            opened = await self._open(address, payload)
            if isinstance(opened, PalestraError):
                if opened.http_status in RETRYABLE:
                    exclude.append(address)
                    last = opened
                    continue
                raise opened
            return opened
        raise last or NoWorkerError(f"no worker could serve {model!r}")

    async def _open(
        self, address: str, payload: dict[str, Any]
    ) -> AsyncIterator[ChunkMessage] | PalestraError:
        nonce = self._challenge()
        try:
            response = await self._stream_session().post(
                f"{address}/generate", json=payload, headers=nonce
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            await self.report_dead(address)
            return BackendError(f"worker {address} unreachable: {exc or type(exc).__name__}")
        impostor = await self._impostor(address, nonce, response.headers)
        if impostor is not None:
            response.close()
            return impostor
        if response.status != 200:
            try:
                body = await response.read()
            except (TimeoutError, aiohttp.ClientError):
                body = b""
            response.close()
            return _upstream_error(response.status, response.headers, body)
        lines = _lines(response.content)
        try:
            first = await anext(lines)
        except (TimeoutError, aiohttp.ClientError, StopAsyncIteration) as exc:
            response.close()
            await self.report_dead(address)
            reason = exc or type(exc).__name__
            return BackendError(f"worker {address} failed before its first chunk: {reason}")
        return self._chunks(address, response, first, lines)

    async def _chunks(
        self,
        address: str,
        response: aiohttp.ClientResponse,
        first: bytes,
        lines: AsyncIterator[bytes],
    ) -> AsyncIterator[ChunkMessage]:
        finished = False
        try:
            line: bytes | None = first
            while line is not None:
                data = json.loads(line)
                if "error" in data:
                    raise error_from_envelope(data, int(data.get("status") or 500))
                chunk = ChunkMessage.model_validate(data)
                finished = finished or chunk.finish_reason is not None
                yield chunk
                line = await anext(lines, None)
        except (TimeoutError, aiohttp.ClientError) as exc:
            await self.report_dead(address)
            raise BackendError(
                f"worker {address} failed mid-stream: {exc or type(exc).__name__}",
                code="worker_failed",
            ) from exc
        finally:
            # A stream read to its end keeps its connection; one left early closes it,
            # which is how the worker learns to stop generating.
            if finished:
                response.release()
            else:
                response.close()
        if not finished:
            await self.report_dead(address)
            raise BackendError(
                f"worker {address} ended the stream without finishing", code="worker_failed"
            )


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The non-empty lines of an NDJSON body, whatever their length."""
    pending = b""
    async for data in content.iter_any():
        *complete, pending = (pending + data).split(b"\n")
        for line in complete:
            if line.strip():
                yield line
    if pending.strip():
        yield pending


def _safe_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return {}


def _upstream_error(status: int, headers: Mapping[str, str], body: bytes) -> PalestraError:
    """The typed error another Palestra service answered, with its Retry-After."""
    error = error_from_envelope(_safe_json(body), status)
    if isinstance(error, RetryLaterError):
        with contextlib.suppress(KeyError, ValueError):
            error.retry_after = float(headers["retry-after"])
    return error


def _json_or_raise(response: httpx.Response, body: bytes) -> Any:
    if response.status_code >= 400:
        raise _upstream_error(response.status_code, response.headers, body)
    return _safe_json(body)
