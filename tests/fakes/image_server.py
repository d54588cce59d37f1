"""A loopback web server with pictures on it, for image URL fetching: a PNG, a large PNG,
a page that is not an image, a redirect chain, and a slow picture."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI, Response
from fastapi.responses import RedirectResponse

from tests.fakes.vision_model import png_bytes


def build_image_app(slow_seconds: float = 5.0) -> FastAPI:
    app = FastAPI()
    picture = png_bytes()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/picture.png")
    async def small() -> Response:
        return Response(picture, media_type="image/png")

    @app.get("/big.png")
    async def big() -> Response:
        return Response(png_bytes((1500, 1500)) + b"\0" * 2**20, media_type="image/png")

    @app.get("/page.html")
    async def page() -> Response:
        return Response(b"<html>not a picture</html>", media_type="image/png")

    @app.get("/hop/{n}")
    async def hop(n: int) -> RedirectResponse:
        return RedirectResponse(f"/hop/{n - 1}" if n > 1 else "/picture.png", status_code=302)

    @app.get("/slow.png")
    async def slow() -> Response:
        await asyncio.sleep(slow_seconds)
        return Response(picture, media_type="image/png")

    return app
