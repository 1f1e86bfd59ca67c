"""The FastAPI application: routers, error handlers, and the container's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.auth.guard import GuardedRoute
from api.auth.hardening import install_hardening
from api.deps import document_headers
from api.errors import install_error_handlers
from api.http_metrics import HttpMetrics
from api.ports import Platform
from api.route_table import add_routes, index_routes
from api.routes import artifacts, audit, auth, clients, events, fleet, health, jobs, live, proof
from api.web import routes as web
from telemetry import tracing


def create_app(container: Platform, *, manage_lifespan: bool = True) -> FastAPI:
    """An app serving `container`. With `manage_lifespan` the app starts/stops the container."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_lifespan:
            await container.start()
        try:
            yield
        finally:
            if manage_lifespan:
                await container.stop()

    app = FastAPI(
        title="flp",
        version="0.1.0",
        summary="Event-sourced federated learning platform: commands, queries, history and live push.",
        lifespan=lifespan,
    )
    app.state.platform = container
    app.router.route_class = GuardedRoute  # a route added with @app.get / add_api_route is guarded too
    install_error_handlers(app)
    install_hardening(app, container.settings)
    app.add_middleware(HttpMetrics)
    if tracing.active():  # OTEL_EXPORTER_OTLP_ENDPOINT set: server spans for every request
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, excluded_urls="health,metrics", exclude_spans=["receive", "send"])
    for router in (
        jobs.router,
        artifacts.router,
        clients.router,
        fleet.router,
        events.router,
        live.router,
        health.router,
        auth.router,
        audit.router,
        proof.router,
    ):
        document_headers(router)  # the headers the command dependencies read themselves, in OpenAPI
        add_routes(app, router, GuardedRoute)  # every route: token, role rule, rate limit (api/auth/rules.py)
    web.install(app)  # the dashboard (api/web): pages at /ui, live fragments, the login form
    index_routes(app)  # each request is matched only against the routes that can match it
    return app
