"""Image content parts as the API server takes them in, before a request is dispatched.

`data:` URLs are checked: base64 of a PNG, JPEG, GIF or WebP image (by its bytes, not its
label) within the size limit. http(s) URLs are fetched when fetching is on (the default,
as OpenAI and vLLM do): at most `max_bytes`, within `timeout_s` for the whole download,
an image type by its bytes, at most 3 redirects, and never from a loopback, private,
link-local or reserved address unless that is allowed (otherwise anyone who can send a
chat request could make the server read its own network). A fetched image becomes a
`data:` URL, so workers and backends only ever receive the image itself. Every failure is
a 400 that names the image and what to do.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from palestra.core.images import checked_type, decode_data_url, image_error

MAX_REDIRECTS = 3


@dataclass(frozen=True)
class ImageLimits:
    fetch: bool = True
    timeout_s: float = 10.0
    max_bytes: int = 20 * 2**20
    allow_private: bool = False


async def _check_host(url: str, which: int, limits: ImageLimits) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise image_error(which, f"{url!r} is not an http(s) URL")
    if limits.allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname,
            parts.port or (443 if parts.scheme == "https" else 80),
            type=socket.SOCK_STREAM,
        )
    except OSError as exc:
        raise image_error(which, f"cannot resolve {parts.hostname!r}: {exc}") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global or address.is_multicast:
            raise image_error(
                which,
                f"{parts.hostname} is a loopback, private or reserved address; this server "
                "does not fetch from those (send the image as a data: URL)",
            )


async def _fetch(client: httpx.AsyncClient, url: str, which: int, limits: ImageLimits) -> bytes:
    for _ in range(MAX_REDIRECTS + 1):
        await _check_host(url, which, limits)
        async with client.stream("GET", url) as response:
            if response.is_redirect and "location" in response.headers:
                url = urljoin(url, response.headers["location"])
                continue
            if response.status_code != 200:
                raise image_error(which, f"fetching {url} answered HTTP {response.status_code}")
            declared = int(response.headers.get("content-length") or 0)
            if declared > limits.max_bytes:
                raise image_error(which, f"{url} is over the {limits.max_bytes}-byte limit")
            body = bytearray()
            async for piece in response.aiter_bytes():
                body += piece
                if len(body) > limits.max_bytes:
                    raise image_error(which, f"{url} is over the {limits.max_bytes}-byte limit")
            return bytes(body)
    raise image_error(which, f"more than {MAX_REDIRECTS} redirects")


async def fetch_image(url: str, which: int, limits: ImageLimits) -> str:
    """An http(s) image URL fetched within the limits, as a data: URL."""
    if not limits.fetch:
        raise image_error(
            which,
            "this server does not fetch image URLs (started with --no-fetch-image-urls); "
            "send the image as a data: URL",
        )
    try:
        async with httpx.AsyncClient(timeout=limits.timeout_s) as client:
            data = await asyncio.wait_for(_fetch(client, url, which, limits), limits.timeout_s)
    except TimeoutError:
        raise image_error(which, f"fetching {url} took over {limits.timeout_s:g} s") from None
    except httpx.HTTPError as exc:
        raise image_error(which, f"could not fetch {url}: {exc}") from None
    kind = checked_type(data, which, limits.max_bytes)
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


async def resolve_images(messages: list[dict[str, Any]], limits: ImageLimits) -> None:
    """Check each data: image and replace each http(s) image by its data: URL, in place
    (messages in OpenAI's shape, as `ChatCompletionRequest.message_dicts` writes them)."""
    parts = [
        part
        for message in messages
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if part.get("type") == "image_url"
    ]
    for which, part in enumerate(parts, start=1):  # one at a time: each within the limits
        url = part["image_url"]["url"]
        if url.startswith("data:"):
            decode_data_url(url, which, limits.max_bytes)
        else:
            part["image_url"] = {"url": await fetch_image(url, which, limits)}
