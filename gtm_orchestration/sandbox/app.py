"""The sandbox application: emulated SaaS APIs behind HubSpot's gateway rules.

Every request to an emulated API is counted in the statistics by endpoint and status.
Requests to ``/crm/`` also pass HubSpot's gateway first: bearer-token authentication, the
per-token rate limit (with the ``X-HubSpot-RateLimit-*`` headers on every answer) and the
operator's injected faults; requests to ``/enrichment/`` pass the enrichment vendor's
(``sandbox/enrichment.py``), requests to ``/services/data/`` the Salesforce org's
(``sandbox/salesforce/``) and requests to ``/api/v2/`` the sequencer's (``sandbox/outreach/``).
Operator endpoints (``/__sandbox/...``, ``/healthz``) and the alert sinks
(``sandbox/alert_sinks.py``) are neither counted nor limited.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from gtm_orchestration.sandbox.alert_sinks import ALERT_SINK_PATHS, AlertSinks, alert_sink_router
from gtm_orchestration.sandbox.enrichment import (
    DEFAULT_RATE_LIMIT,
    ENRICHMENT_PREFIX,
    EnrichmentApi,
    enrichment_operator_router,
    enrichment_router,
)
from gtm_orchestration.sandbox.faults import FaultInjector, FaultSettings, InjectedFault
from gtm_orchestration.sandbox.hubspot.api import HubSpotPortal, hubspot_router
from gtm_orchestration.sandbox.hubspot.associations import associations_router
from gtm_orchestration.sandbox.hubspot.errors import (
    INTERNAL_ERROR,
    INVALID_AUTHENTICATION,
    MISSING_TOKEN_MESSAGE,
    OBJECT_NOT_FOUND,
    VALIDATION_ERROR,
    HubSpotError,
    error_body,
    rate_limit_body,
)
from gtm_orchestration.sandbox.outreach.api import (
    OUTREACH_PREFIX,
    OutreachApi,
    outreach_operator_router,
    outreach_router,
)
from gtm_orchestration.sandbox.rate_limit import RateDecision, RollingWindowLimiter
from gtm_orchestration.sandbox.salesforce import (
    SALESFORCE_PREFIX,
    SalesforceApiError,
    SalesforceOrg,
    salesforce_error_handler,
    salesforce_operator_router,
    salesforce_router,
)
from gtm_orchestration.sandbox.state import RequestStats, SandboxDatabase

logger = logging.getLogger(__name__)

CRM_PREFIX = "/crm/"
# Operator paths: not part of any emulated API, so never counted, limited or faulted. The
# alert sinks are treated alike: alerts must get through whatever the operator injects.
OPERATOR_PATHS = ("/__sandbox/", "/healthz", "/docs", "/redoc", "/openapi.json", *ALERT_SINK_PATHS)
_CORRELATION_ID = "gtm.sandbox.correlation_id"
_PATH_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
_BEARER = re.compile(r"^\s*bearer\s+(\S.*?)\s*$", re.IGNORECASE)

CallNext = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class SandboxServices:
    """The running sandbox's state, reachable as ``app.state.sandbox``."""

    database: SandboxDatabase
    stats: RequestStats
    hubspot: HubSpotPortal
    limiter: RollingWindowLimiter
    faults: FaultInjector
    enrichment: EnrichmentApi
    salesforce: SalesforceOrg
    outreach: OutreachApi
    alerts: AlertSinks


def create_app(
    state_dir: Path,
    rate_limit: int = 190,
    rate_window_s: float = 10.0,
    enrichment_rate_limit: int = DEFAULT_RATE_LIMIT,
) -> FastAPI:
    """The sandbox ASGI app, keeping its state in SQLite under ``state_dir`` (created).

    ``rate_limit`` requests per rolling ``rate_window_s`` seconds are allowed per token on
    ``/crm/``; HubSpot's default is 190 per 10 s. ``enrichment_rate_limit`` requests per
    second are allowed per key on ``/enrichment/``.
    """
    database = SandboxDatabase(state_dir)
    services = SandboxServices(
        database=database,
        stats=RequestStats(database),
        hubspot=HubSpotPortal(database),
        limiter=RollingWindowLimiter(rate_limit, rate_window_s),
        faults=FaultInjector(),
        enrichment=EnrichmentApi(database, enrichment_rate_limit),
        salesforce=SalesforceOrg(database),
        outreach=OutreachApi(database),
        alerts=AlertSinks(database),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        services.salesforce.start()
        yield
        services.salesforce.close()
        database.close()

    app = FastAPI(title="GTM sandbox: emulated SaaS APIs", lifespan=lifespan)
    app.state.sandbox = services
    emulated_routers = [
        hubspot_router(services.hubspot),
        associations_router(services.hubspot),
        enrichment_router(services.enrichment),
        salesforce_router(services.salesforce),
        outreach_router(services.outreach),
    ]
    for router in emulated_routers:
        app.include_router(router)
    app.include_router(enrichment_operator_router(services.enrichment))
    app.include_router(salesforce_operator_router(services.salesforce))
    app.include_router(outreach_operator_router(services.outreach))
    app.include_router(alert_sink_router(services.alerts))
    app.add_exception_handler(SalesforceApiError, salesforce_error_handler)
    # The statistics name requests by route template, also for requests answered before
    # routing (401, 429, injected faults), so the templates are matched here directly.
    emulated_routes = [route for router in emulated_routers for route in router.routes]
    _add_operator_routes(app, services)
    _add_error_handlers(app)

    @app.middleware("http")
    async def emulated_gateway(request: Request, call_next: CallNext) -> Response:
        path = request.url.path
        if path.startswith(OPERATOR_PATHS):
            return await call_next(request)
        correlation_id = str(uuid.uuid4())
        request.scope[_CORRELATION_ID] = correlation_id
        try:
            if path.startswith(CRM_PREFIX):
                response = await _through_hubspot_gateway(request, call_next, services)
                response.headers["X-HubSpot-Correlation-Id"] = correlation_id
            elif path.startswith(ENRICHMENT_PREFIX):
                token = _bearer_token(request.headers.get("authorization"))
                response = await services.enrichment.gateway(
                    request, call_next, token, services.faults
                )
            elif path.startswith(SALESFORCE_PREFIX):
                token = _bearer_token(request.headers.get("authorization"))
                response = await services.salesforce.gateway(
                    request, call_next, token, services.faults
                )
            elif path.startswith(OUTREACH_PREFIX):
                token = _bearer_token(request.headers.get("authorization"))
                response = await services.outreach.gateway(
                    request, call_next, token, services.faults
                )
            else:
                response = await call_next(request)
        except Exception:
            logger.exception("sandbox request %s %s failed", request.method, path)
            response = JSONResponse(
                error_body("internal error", INTERNAL_ERROR, correlation_id), status_code=500
            )
        canonical_object_type = services.hubspot.schema.canonical_object_type
        endpoint = endpoint_key(emulated_routes, request.scope, canonical_object_type)
        await run_in_threadpool(services.stats.record, endpoint, response.status_code)
        return response

    return app


async def _through_hubspot_gateway(
    request: Request, call_next: CallNext, services: SandboxServices
) -> Response:
    """Authenticate, rate-limit and fault-inject one ``/crm/`` request, then answer it."""
    correlation_id = _correlation_id(request)
    token = _bearer_token(request.headers.get("authorization"))
    if token is None:
        return JSONResponse(
            error_body(MISSING_TOKEN_MESSAGE, INVALID_AUTHENTICATION, correlation_id),
            status_code=401,
        )
    decision = services.limiter.acquire(token)
    if not decision.allowed:
        body = rate_limit_body(correlation_id, decision.group_name, decision.policy_name or "")
        return _with_rate_headers(JSONResponse(body, status_code=429), decision)

    settings = services.faults.settings
    if settings.latency_ms:
        await asyncio.sleep(settings.latency_ms / 1000)
    fault = services.faults.draw()
    if fault is InjectedFault.SERVER_ERROR:
        body = error_body("internal error", INTERNAL_ERROR, correlation_id)
        return _with_rate_headers(JSONResponse(body, status_code=500), decision)
    if fault is InjectedFault.RATE_LIMITED:
        # Indistinguishable from the real limiter, so clients exercise the same path.
        body = rate_limit_body(correlation_id, decision.group_name)
        response = JSONResponse(body, status_code=429)
        return _with_rate_headers(response, decision, {"X-HubSpot-RateLimit-Remaining": "0"})
    return _with_rate_headers(await call_next(request), decision)


def _with_rate_headers(
    response: Response, decision: RateDecision, overrides: Mapping[str, str] | None = None
) -> Response:
    response.headers.update({**decision.headers(), **(overrides or {})})
    return response


def _bearer_token(authorization: str | None) -> str | None:
    match = _BEARER.match(authorization or "")
    return match.group(1) if match else None


def _correlation_id(request: Request) -> str:
    return str(request.scope.get(_CORRELATION_ID) or uuid.uuid4())


def endpoint_key(
    routes: Sequence[BaseRoute], scope: Scope, canonical_object_type: Callable[[str], str]
) -> str:
    """``METHOD /path`` with the concrete object type and ``{id}`` for record ids.

    E.g. ``PATCH /crm/v3/objects/contacts/{id}``; a path no route knows is kept as sent.
    """
    method = scope["method"]
    fallback = None
    for route in routes:
        match, child_scope = route.matches(scope)
        if match is Match.NONE or not isinstance(route, Route):
            continue
        params = child_scope.get("path_params", {})

        def render(found: re.Match[str], params: Mapping[str, str] = params) -> str:
            name = found.group(1)
            if name.endswith("object_type"):
                return canonical_object_type(str(params.get(name, name)))
            return "{id}" if name.endswith("_id") else "{" + name + "}"

        key = f"{method} {_PATH_PARAM.sub(render, route.path)}"
        if match is Match.FULL:
            return key
        fallback = fallback or key
    return fallback or f"{method} {scope['path']}"


def _add_operator_routes(app: FastAPI, services: SandboxServices) -> None:
    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/__sandbox/stats")
    def sandbox_stats() -> dict[str, object]:
        total, by_endpoint = services.stats.snapshot()
        return {
            "total": total,
            "by_endpoint": by_endpoint,
            "writes": services.hubspot.store.write_counts(),
        }

    @app.post("/__sandbox/reset")
    def reset_sandbox() -> dict[str, str]:
        services.hubspot.store.reset()
        services.stats.reset()
        services.faults.configure(FaultSettings())
        services.limiter.reset()
        services.enrichment.reset()
        services.salesforce.reset()
        services.outreach.reset()
        services.alerts.reset()
        return {"status": "reset"}

    @app.get("/__sandbox/faults")
    def current_faults() -> FaultSettings:
        return services.faults.settings

    @app.post("/__sandbox/faults")
    def set_faults(settings: FaultSettings) -> FaultSettings:
        services.faults.configure(settings)
        return settings


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HubSpotError)
    async def hubspot_error(request: Request, error: HubSpotError) -> Response:
        return JSONResponse(error.body(_correlation_id(request)), status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        if not request.url.path.startswith(CRM_PREFIX):
            return await request_validation_exception_handler(request, error)
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
            for problem in error.errors()
        )
        message = f"Invalid input JSON: {problems}"
        body = error_body(message, VALIDATION_ERROR, _correlation_id(request))
        return JSONResponse(body, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if not request.url.path.startswith(CRM_PREFIX):
            return await http_exception_handler(request, error)
        category = OBJECT_NOT_FOUND if error.status_code == 404 else VALIDATION_ERROR
        message = "resource not found" if error.status_code == 404 else str(error.detail)
        body = error_body(message, category, _correlation_id(request))
        return JSONResponse(body, status_code=error.status_code, headers=error.headers)
