"""``relaygraph mcp``: serve relaygraph's tools to MCP clients.

Default: stdio, as the owner of ``RELAYGRAPH_API_KEY`` (what desktop clients start).
``--http``: a standalone Streamable HTTP endpoint at ``http://HOST:PORT/mcp`` with
bearer authentication (``relaygraph serve`` also serves ``/mcp`` beside the API).
Exit codes: 0 served until the client left, 2 configuration problem (message on stderr).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from runtime.settings import Settings

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def mcp_command(
    http: Annotated[
        bool, typer.Option("--http", help="Serve Streamable HTTP instead of stdio.")
    ] = False,
    host: Annotated[str, typer.Option("--host", help="Interface to bind (with --http).")] = (
        "127.0.0.1"
    ),
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="Port to listen on (with --http).")
    ] = 8765,
) -> None:
    """Serve relaygraph's tools over MCP: stdio (default) or Streamable HTTP (--http)."""
    # stdout belongs to the protocol: logs and messages go to stderr, from the start.
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        with contextlib.redirect_stdout(sys.stderr):
            settings = _load_settings()
        if http:
            asyncio.run(_serve_http(settings, host, port))
        else:
            asyncio.run(_serve_stdio(settings))
    except _ConfigProblem as exc:
        print(f"relaygraph mcp: error: {exc}", file=sys.stderr)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except KeyboardInterrupt:
        pass
    raise typer.Exit(EXIT_OK)


class _ConfigProblem(Exception):
    pass


def _load_settings() -> Settings:
    from pydantic import ValidationError

    from runtime.settings import Settings, configuration_error_message

    try:
        settings = Settings()
    except ValidationError as exc:
        raise _ConfigProblem(configuration_error_message(exc)) from None
    logging.getLogger().setLevel(settings.log_level.upper())
    return settings


async def _serve_stdio(settings: Settings) -> None:
    from mcp_server.config import McpConfig
    from mcp_server.stdio import McpStartupError, serve_stdio, stdio_principal
    from runtime.system import open_system
    from store import StoreError

    key = settings.api_key.get_secret_value() if settings.api_key else None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            opened = open_system(settings)
            system = await opened.__aenter__()
    except StoreError as exc:
        raise _ConfigProblem(str(exc)) from None
    try:
        try:
            principal = await stdio_principal(
                db=system.db, api_key=key, local_only=settings.mcp_local_only
            )
        except McpStartupError as exc:
            raise _ConfigProblem(f"{exc}{_unknown_key_hint(exc, settings)}") from None
        logging.getLogger(__name__).info(
            "serving MCP over stdio as %s/%s", principal.tenant, principal.user
        )
        await serve_stdio(system.executor, McpConfig.from_settings(settings), principal)
    finally:
        await opened.__aexit__(None, None, None)


def _unknown_key_hint(problem: Exception, settings: Settings) -> str:
    """Where keys were looked up, when a well-formed key was not found there: desktop
    clients start ``relaygraph mcp`` with their own env block, so its RELAYGRAPH_DATA_DIR
    often differs from the one ``relaygraph keys create`` used."""
    import platformdirs

    from identity.apikeys import ApiKeyError

    cause = problem.__context__
    if not (isinstance(cause, ApiKeyError) and cause.code == "invalid_api_key"):
        return ""
    if settings.database_url:
        where = "the database in RELAYGRAPH_DATABASE_URL"
    else:
        where = f"the data directory {settings.data_dir}"
    default = platformdirs.user_data_dir("relaygraph", appauthor=False)
    return (
        f" (looked up in {where}; a key works only with the store it was created in: set "
        "RELAYGRAPH_DATA_DIR in the client's env block to the directory `relaygraph keys "
        f"create` used, {default} unless RELAYGRAPH_DATA_DIR was set)"
    )


async def _serve_http(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from api.app import auth_config
    from identity.ratelimit import RateLimiter
    from mcp_server.config import McpConfig
    from mcp_server.http import McpHttpEndpoint, standalone_app
    from relaygraph.addresses import unbindable
    from runtime.system import open_system
    from store import StoreError

    problem = unbindable(host, port)  # one line, before start-up's work
    if problem is not None:
        raise _ConfigProblem(problem)
    endpoint = McpHttpEndpoint(McpConfig.from_settings(settings))
    limiter = RateLimiter(
        per_key=settings.rate_limit_per_key,
        per_tenant=settings.rate_limit_per_tenant,
        storage_uri=settings.rate_limit_storage_uri,
    )
    try:
        opened = open_system(settings)
        system = await opened.__aenter__()
    except StoreError as exc:
        raise _ConfigProblem(str(exc)) from None
    try:
        async with endpoint.serving(
            system.executor, auth_config(settings), system.db, limiter=limiter
        ):
            config = uvicorn.Config(
                standalone_app(endpoint),
                host=host,
                port=port,
                log_level="warning",
                lifespan="off",
            )
            print(f"relaygraph MCP on http://{host}:{port}/mcp", file=sys.stderr)
            await uvicorn.Server(config).serve()
    finally:
        await opened.__aexit__(None, None, None)
