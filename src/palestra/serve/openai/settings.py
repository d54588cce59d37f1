"""`ApiSettings`: where the OpenAI-compatible API server finds workers, who may call it,
from which web origins, and how it takes images in chat messages."""

from __future__ import annotations

from palestra.core.settings import Settings, option
from palestra.serve.openai.images import ImageLimits
from palestra.serve.settings import DEFAULT_CONTROLLER


class ApiSettings(Settings):
    """Where the API server finds workers, who may call it, and from which web origins."""

    controller: str = option(
        DEFAULT_CONTROLLER, "The controller's URL.", flag="--controller-address"
    )
    api_keys: tuple[str, ...] = option((), "Accepted API keys; none: no key needed.", comma=True)
    allowed_origins: tuple[str, ...] = option((), "Web origins allowed by CORS.", comma=True)
    allow_credentials: bool = option(False, "CORS: allow credentials.")
    allowed_methods: tuple[str, ...] = option(("*",), "CORS: allowed methods.", comma=True)
    allowed_headers: tuple[str, ...] = option(("*",), "CORS: allowed headers.", comma=True)
    fetch_image_urls: bool = option(
        True,
        "Fetch http(s) image URLs in chat messages (off: only data: URLs are taken).",
        secondary="--no-fetch-image-urls",
    )
    image_fetch_timeout: float = option(10.0, "Seconds allowed to download one image URL.")
    max_image_bytes: int = option(20 * 2**20, "Largest image taken, fetched or inline (bytes).")
    fetch_private_image_urls: bool = option(
        False,
        "Also fetch image URLs on loopback, private or link-local addresses (off: only "
        "public hosts, so requests cannot make the server read its own network).",
    )

    responses_retention: float = option(
        86400.0,
        "Seconds a stored Responses API response is kept (for previous_response_id and "
        "GET /v1/responses/{id}); kept in this server's memory.",
    )
    responses_kept: int = option(
        1000, "Most Responses API responses kept at once (the oldest go first); 0: none."
    )

    @property
    def image_limits(self) -> ImageLimits:
        return ImageLimits(
            self.fetch_image_urls,
            self.image_fetch_timeout,
            self.max_image_bytes,
            self.fetch_private_image_urls,
        )
