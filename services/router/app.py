"""The router's HTTP app: alert lookups, the rules API, health, readiness and metrics."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from services.asyncapi import render_asyncapi
from services.router.api import build_alerts_api
from services.router.decisions import DecisionStore
from services.router.metrics import RouterMetrics
from services.router.ports import RulesetSource
from services.rules.control.api import build_rules_api
from shared.api_docs import serve_docs_offline
from shared.asyncapi_route import add_asyncapi_route
from shared.auth import TokenValidator
from shared.hardening import harden_http
from shared.http import add_operational_routes, add_request_logging, install_error_handlers
from shared.http_auth import FailedAuthLimiter

__all__ = ["build_app"]


def build_app(
    *,
    validator: TokenValidator,
    rules_store: object,
    ruleset: RulesetSource,
    decision_store: DecisionStore,
    metrics: RouterMetrics,
    partitions_assigned: Callable[[], bool],
    auth_limiter: FailedAuthLimiter | None = None,
    decision_indexer_ready: Callable[[], bool] | None = None,
) -> FastAPI:
    """Wire the router's dependencies onto ``app.state`` and mount its routes."""
    app = FastAPI(
        title="alertyard router",
        summary="Routes alerts to team topics; looks up routing decisions; manages rules.",
        version="0.1.0",
    )
    app.state.validator = validator
    app.state.rules_store = rules_store
    app.state.decision_store = decision_store
    app.state.auth_limiter = auth_limiter
    serve_docs_offline(app)
    install_error_handlers(app)
    harden_http(app)  # before the request log, so it logs what hardening refused
    add_request_logging(app)

    async def readiness() -> dict[str, bool]:
        checks = {"partitions_assigned": partitions_assigned(), "ruleset_loaded": ruleset.loaded}
        if decision_indexer_ready is not None:  # the indexer child process (main.py)
            checks["decision_indexer"] = decision_indexer_ready()
        return checks

    add_operational_routes(app, readiness=readiness, registry=metrics.registry)
    add_asyncapi_route(app, render_asyncapi)
    app.include_router(build_alerts_api())
    app.include_router(build_rules_api())
    return app
