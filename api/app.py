"""The FastAPI application: services opened in the lifespan, routers under /api/v1."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api.body_limit import BodySizeLimit
from api.deps import Services
from api.errors import ERROR_RESPONSES, install_error_handlers
from api.routes import (
    approvals,
    assistants,
    audit,
    console,
    credentials,
    feedback,
    files,
    meta,
    metrics,
    privacy,
    runs,
    store,
    threads,
    tools,
    usage,
)
from api.schemas import refuse_nul_in_url
from identity.auth import AuthConfig, Authenticator
from identity.ratelimit import RateLimiter
from mcp_server import McpConfig, McpHttpEndpoint
from runtime.feedback import FeedbackService
from runtime.observability import tracing_enabled
from runtime.runs import Runner
from runtime.settings import Settings
from runtime.system import open_system
from runtime.threads import ThreadService
from runtime.worker import Worker

API_PREFIX = "/api/v1"


def auth_config(settings: Settings) -> AuthConfig:
    return AuthConfig(
        disabled=settings.auth_disabled,
        api_key_cache_seconds=settings.api_key_cache_seconds,
        jwt_secret=settings.jwt_secret.get_secret_value() if settings.jwt_secret else None,
        jwt_public_key_file=settings.jwt_public_key_file,
        jwks_file=settings.jwks_file,
        jwt_issuer=settings.jwt_issuer,
        jwt_audience=settings.jwt_audience,
        jwt_algorithms=tuple(settings.jwt_algorithms),
        jwt_tenant_claim=settings.jwt_tenant_claim,
        jwt_roles_claim=settings.jwt_roles_claim,
    )


def create_app(settings: Settings | None = None, *, workers: int = 4) -> FastAPI:
    """The API app. ``workers`` in-process run workers (0: another process runs them)."""
    settings = settings or Settings()
    mcp_endpoint = McpHttpEndpoint(McpConfig.from_settings(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_system(settings) as system:
            runner = Runner(system)
            worker = Worker(runner, concurrency=workers) if workers > 0 else None
            app.state.services = Services(
                system=system,
                runner=runner,
                threads=ThreadService(runner),
                authenticator=Authenticator(auth_config(settings), system.db),
                limiter=RateLimiter(
                    per_key=settings.rate_limit_per_key,
                    per_tenant=settings.rate_limit_per_tenant,
                    storage_uri=settings.rate_limit_storage_uri,
                ),
                worker=worker,
                feedback=FeedbackService(system.db),
            )
            if worker is not None:
                worker.start()
            # Everything loaded so far lives as long as the server: keep it out of the
            # cyclic GC, whose full collections otherwise rescan it under load.
            gc.freeze()
            try:
                # /mcp: its session manager runs inside this lifespan.
                async with mcp_endpoint.serving(
                    system.executor,
                    auth_config(settings),
                    system.db,
                    limiter=app.state.services.limiter,
                ):
                    yield
            finally:
                if worker is not None:
                    await worker.stop()

    app = FastAPI(
        title="relaygraph",
        version="0.1.0",
        description="Durable, permissioned agent runs (LangGraph-Server-compatible API).",
        lifespan=lifespan,
        docs_url=f"{API_PREFIX}/docs",
        openapi_url=f"{API_PREFIX}/openapi.json",
        redoc_url=None,
        dependencies=[Depends(refuse_nul_in_url)],
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    if settings.cors_origins:
        # Added last, so outermost: its refusals (413) reach a browser page too. Exposed:
        # the headers the JS SDK reads (run id, stream rejoin, next page) and Retry-After.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["Content-Location", "Location", "X-Pagination-Next", "Retry-After"],
        )
    install_error_handlers(app)
    app.include_router(meta.router, prefix=API_PREFIX)
    resources = [assistants, threads, runs, store, feedback, audit, approvals, usage, tools]
    resources += [files, privacy, credentials]
    for module in resources:
        app.include_router(module.router, prefix=API_PREFIX, responses=ERROR_RESPONSES)
    app.include_router(metrics.router)
    app.include_router(console.router, responses=ERROR_RESPONSES)  # /console (issue 8)
    app.router.routes.extend(mcp_endpoint.routes())  # /mcp and its resource metadata
    if tracing_enabled():
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, excluded_urls="/metrics,/api/v1/ok")
    return app
