"""Image content parts at the API's edge: data: URLs checked by their bytes, http(s) URLs
fetched within size, type, time and redirect limits, never from the server's own network
unless allowed, and every failure a 400 naming the image."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any

import pytest

from palestra.core.errors import InvalidRequestError
from palestra.core.images import image_type
from palestra.serve.openai.images import ImageLimits, resolve_images
from tests.fakes.image_server import build_image_app
from tests.fakes.server import serve_in_thread
from tests.fakes.vision_model import png_bytes

LOOPBACK = ImageLimits(timeout_s=2.0, allow_private=True)


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serve_in_thread(build_image_app(slow_seconds=4)) as url:
        yield url


def _messages(*urls: str) -> list[dict[str, Any]]:
    parts = [{"type": "image_url", "image_url": {"url": url}} for url in urls]
    return [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, *parts]}]


def _resolve(messages: list[dict[str, Any]], limits: ImageLimits) -> list[str]:
    asyncio.run(resolve_images(messages, limits))
    return [p["image_url"]["url"] for p in messages[0]["content"] if p["type"] == "image_url"]


def _data_url(data: bytes, label: str = "image/png") -> str:
    return f"data:{label};base64,{base64.b64encode(data).decode()}"


def test_a_fetched_image_becomes_a_data_url(site: str) -> None:
    urls = _resolve(_messages(site + "/picture.png", site + "/hop/2"), LOOPBACK)
    assert urls == [_data_url(png_bytes())] * 2


def test_data_urls_pass_as_they_are() -> None:
    url = _data_url(png_bytes())
    assert _resolve(_messages(url), ImageLimits()) == [url]


@pytest.mark.parametrize(
    ("path", "limits", "error"),
    [
        ("/big.png", ImageLimits(max_bytes=2**20, allow_private=True), "over the 1048576-byte"),
        ("/page.html", LOOPBACK, "not a PNG, JPEG, GIF or WebP"),
        ("/slow.png", ImageLimits(timeout_s=0.5, allow_private=True), "took over 0.5 s"),
        ("/missing.png", LOOPBACK, "answered HTTP 404"),
        ("/hop/5", LOOPBACK, "more than 3 redirects"),
        ("/picture.png", ImageLimits(), "loopback, private or reserved"),
        ("/picture.png", ImageLimits(fetch=False), "--no-fetch-image-urls"),
    ],
)
def test_fetching_within_limits(site: str, path: str, limits: ImageLimits, error: str) -> None:
    with pytest.raises(InvalidRequestError, match=error) as caught:
        _resolve(_messages(_data_url(png_bytes()), site + path), limits)
    assert caught.value.message.startswith("image 2:") and caught.value.http_status == 400


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("data:image/png," + "x" * 10, "base64 data: URL"),
        ("data:image/png;base64,@@@", "not valid base64"),
        (_data_url(b"<svg onload=alert(1)>", "image/png"), "not a PNG, JPEG, GIF or WebP"),
        (_data_url(b"\x89PNG\r\n\x1a\n" + b"\0" * 2048), "over the 1024-byte limit"),
    ],
)
def test_bad_data_urls(url: str, error: str) -> None:
    with pytest.raises(InvalidRequestError, match=error):
        _resolve(_messages(url), ImageLimits(max_bytes=1024))


def test_image_types_by_their_bytes() -> None:
    assert image_type(png_bytes()) == "image/png"
    assert image_type(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert image_type(b"GIF89a...") == "image/gif"
    assert image_type(b"RIFF\0\0\0\0WEBPVP8 ") == "image/webp"
    assert image_type(b"%PDF-1.7") is None
