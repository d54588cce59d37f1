"""Authenticated traffic inside a cluster (`PALESTRA_CLUSTER_TOKEN`): real controller,
worker and API server processes. A rogue worker without the token is refused and never
receives a prompt; a server that took over a registered worker's address cannot answer
in its place; the controller and workers answer nobody without the token; the API server
takes the token as a key for the web UI; and the whole cluster speaks TLS with a CA."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from openai import OpenAI

from palestra.serve.cluster import TOKEN_VARIABLE
from tests.fakes.server import serve_in_thread
from tests.integration.cluster import Cluster, Process, wait_for

TOKEN = "cluster-secret-5f0c9a"
HOLDER = {"Authorization": f"Bearer {TOKEN}"}
GENUINE = "genuine answer from the cluster"


def script(folder: Path, reply: str) -> Path:
    path = folder / f"{abs(hash(reply))}.json"
    path.write_text(json.dumps({"model_name": "assistant", "replies": [reply]}))
    return path


def table(controller: Process, **client: Any) -> list[str]:
    rows = httpx.get(controller.url + "/workers", headers=HOLDER, timeout=5, **client).json()
    return [row["address"] for row in rows]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Process, Process]]:
    """A controller, a scripted worker and an API server sharing the token."""
    folder = tmp_path_factory.mktemp("guarded")
    cluster = Cluster(env={TOKEN_VARIABLE: TOKEN})
    try:
        controller = cluster.controller()
        genuine = script(folder, GENUINE)
        cluster.worker(controller.url, "--backend", "scripted", "--model-path", str(genuine))
        wait_for(lambda: len(table(controller)) == 1, 30, "the genuine worker")
        yield controller, cluster.api(controller.url)
    finally:
        cluster.stop()


def ask(api: Process, times: int, key: str = "unused") -> list[str]:
    client = OpenAI(base_url=api.url + "/v1", api_key=key, max_retries=0)
    return [
        client.chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": f"question {n}"}]
        )
        .choices[0]
        .message.content
        or ""
        for n in range(times)
    ]


class FakeWorker:
    """A server that answers like a worker and records every request it receives."""

    def __init__(self, reply: str):
        self.requests: list[str] = []
        self.app = FastAPI()

        @self.app.get("/health")
        async def health() -> dict[str, str]:
            return {"status": "ok"}

        @self.app.post("/{path:path}")
        async def anything(path: str, request: Request) -> StreamingResponse:
            self.requests.append(f"/{path} {(await request.body()).decode()}")
            line = {"text": reply, "finish_reason": "stop", "prompt_tokens": 1}
            body = iter([json.dumps(line) + "\n"])
            return StreamingResponse(body, media_type="application/x-ndjson")

    def registration(self, address: str) -> dict[str, Any]:
        return {"address": address, "models": ["assistant"], "capacity": 1000, "queue_length": 0}


def test_nobody_without_the_token_reaches_the_controller_or_a_worker(
    guarded: tuple[Process, Process],
) -> None:
    controller, _ = guarded
    (worker,) = table(controller)
    for given in ({}, {"Authorization": "Bearer wrong"}):
        for method, url in [
            ("POST", f"{controller.url}/workers/register"),
            ("POST", f"{controller.url}/dispatch"),
            ("GET", f"{controller.url}/workers"),
            ("GET", f"{controller.url}/models"),
            ("POST", f"{worker}/generate"),
            ("GET", f"{worker}/status"),
            ("POST", f"{worker}/tokenize"),
        ]:
            answer = httpx.request(method, url, headers=given, json={}, timeout=5)
            assert answer.status_code == 401, (method, url)
            assert answer.json()["error"]["code"] == "invalid_cluster_token"
            assert TOKEN_VARIABLE in answer.json()["error"]["message"]
    assert httpx.get(f"{controller.url}/health", timeout=5).status_code == 200
    assert httpx.get(f"{worker}/health", timeout=5).status_code == 200
    assert httpx.get(f"{worker}/status", headers=HOLDER, timeout=5).status_code == 200


def test_a_rogue_worker_is_refused_and_never_receives_a_prompt(
    guarded: tuple[Process, Process], tmp_path: Path
) -> None:
    controller, api = guarded
    genuine = table(controller)
    rogue = FakeWorker("rogue answer")
    environment = {k: v for k, v in os.environ.items() if k != TOKEN_VARIABLE}
    outsider = Cluster(env=environment)  # a real `palestra worker` without the token
    with serve_in_thread(rogue.app) as rogue_url:
        try:
            for given in ({}, {"Authorization": "Bearer guessed"}):
                answer = httpx.post(
                    controller.url + "/workers/register",
                    json=rogue.registration(rogue_url),
                    headers=given,
                    timeout=5,
                )
                assert answer.status_code == 401
            real_rogue = outsider.worker(
                controller.url, "--backend", "scripted",
                "--model-path", str(script(tmp_path, "rogue answer")),
            )  # fmt: skip
            time.sleep(3)  # three of its registration attempts, one a second
            assert real_rogue.popen.poll() is None
            assert table(controller) == genuine  # the genuine worker alone
            assert ask(api, 6) == [GENUINE] * 6
        finally:
            outsider.stop()
    assert rogue.requests == []


def test_an_impostor_at_a_registered_address_cannot_answer(
    guarded: tuple[Process, Process],
) -> None:
    """A registration made with the token, for a server that does not hold it (an address
    taken over): the API server refuses its stream and asks the genuine worker."""
    controller, api = guarded
    impostor = FakeWorker("IMPOSTOR")
    with serve_in_thread(impostor.app) as impostor_url:
        registration = impostor.registration(impostor_url)
        answer = httpx.post(
            controller.url + "/workers/register", json=registration, headers=HOLDER, timeout=5
        )
        assert answer.status_code == 200 and impostor_url in table(controller)
        assert ask(api, 4) == [GENUINE] * 4
        assert impostor.requests, "the impostor was never tried: the test proves nothing"
        assert impostor_url not in table(controller)  # reported and dropped


def test_the_api_server_takes_the_token_as_a_key_for_the_web_ui(
    guarded: tuple[Process, Process],
) -> None:
    controller, _ = guarded
    cluster = Cluster(env={TOKEN_VARIABLE: TOKEN})
    try:
        api = cluster.api(controller.url, "--api-keys", "user-key")
        assert ask(api, 1, key="user-key") == [GENUINE]
        assert ask(api, 1, key=TOKEN) == [GENUINE]
        answer = httpx.get(api.url + "/v1/models", headers={"Authorization": "Bearer nope"})
        assert answer.status_code == 401
    finally:
        cluster.stop()


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 it signed: (ca, cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    server_key = ec.generate_private_key(ec.SECP256R1())
    loopback = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Palestra test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(loopback, critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def test_the_cluster_speaks_tls_between_machines(tmp_path: Path) -> None:
    ca, cert, key = make_certificates(tmp_path)
    trusted = ssl.create_default_context(cafile=str(ca))
    tls = ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key), "--ssl-ca-certs", str(ca)]
    cluster = Cluster(env={TOKEN_VARIABLE: TOKEN}, scheme="https", verify=trusted)
    try:
        controller = cluster.controller(*tls)
        assert controller.url.startswith("https://")
        genuine = script(tmp_path, GENUINE)
        cluster.worker(controller.url, "--backend", "scripted", "--model-path", str(genuine), *tls)
        wait_for(lambda: len(table(controller, verify=trusted)) == 1, 30, "the TLS worker")
        assert table(controller, verify=trusted)[0].startswith("https://127.0.0.1:")
        api = cluster.api(controller.url, *tls)
        client = OpenAI(
            base_url=api.url + "/v1", api_key="unused", http_client=httpx.Client(verify=trusted)
        )
        reply = client.chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": "over TLS?"}]
        )
        assert reply.choices[0].message.content == GENUINE
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(controller.url + "/health", timeout=5)  # a client without the CA
    finally:
        cluster.stop()
