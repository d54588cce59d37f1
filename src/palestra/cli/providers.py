"""`palestra providers`: the API provider types an endpoint file's `api_type` may name
(built-in and from plugins), where each answers by default, the key variable it reads, and
the FastChat types that no longer work, with what to use instead."""

from __future__ import annotations

import typer


def providers() -> None:
    """List the provider types for --register-api-endpoint-file's api_type."""
    from palestra.plugins import providers as table

    served = [p for p in table().values() if not p.retired]
    retired = [p for p in table().values() if p.retired]
    for provider in served:
        where = provider.default_base or "api_base, or where the SDK's settings say"
        key = f"${provider.key_env}" if provider.key_env else "no key variable"
        typer.echo(f"{provider.name:26} {provider.summary}\n{'':26} {where}; {key}")
    if retired:
        typer.echo("\nFastChat types that no longer work (endpoints of these are left out):")
        for provider in retired:
            typer.echo(f"{provider.name:26} {provider.summary}")
