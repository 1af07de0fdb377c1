from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from core.health import readiness
from core.llm.resilience import BreakerState
from serving.deps import DbDep, SettingsDep
from serving.problems import MEDIA_TYPE, problem_document, problem_responses

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Every configured store answers", responses=problem_responses(503))
async def readyz(request: Request, settings: SettingsDep, db: DbDep) -> JSONResponse:
    state = request.app.state
    checks = await readiness(settings=settings, db=db, vectors=state.vectors, encoder=state.encoder)
    failed = sorted(name for name, result in checks.items() if not result["ok"])
    # Model routes are reported, not required: while one is down the router falls back and the platform still answers.
    routes = {route: breaker.value for route, breaker in state.router.breaker_states().items()}
    if failed:
        document = problem_document(
            503,
            f"Not ready: {', '.join(failed)} did not answer.",
            kind="not-ready",
            failed=failed,
            checks=checks,
            routes=routes,
        )
        return JSONResponse(document, status_code=503, media_type=MEDIA_TYPE)
    return JSONResponse({"status": "ready", "checks": checks, "routes": routes, "metrics_store": state.metrics_store})


_BREAKER_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


@router.get(
    "/metrics",
    summary="Prometheus metrics: circuit breakers per model route, semantic cache",
    response_class=PlainTextResponse,
)
async def metrics(request: Request) -> PlainTextResponse:
    """Process-level figures only (no tenant's data): scrape every worker."""
    state = request.app.state
    lines = [
        "# HELP parley_route_breaker_state Circuit breaker per provider/model: 0 closed, 1 half-open, 2 open.",
        "# TYPE parley_route_breaker_state gauge",
    ]
    for route, breaker in sorted(state.router.breaker_states().items()):
        lines.append(f'parley_route_breaker_state{{route="{route}"}} {_BREAKER_VALUE[breaker]}')
    lines += [
        "# HELP parley_route_latency_ms Moving average time to answer per provider/model.",
        "# TYPE parley_route_latency_ms gauge",
    ]
    for route, latency in sorted(state.router.latency_ms().items(), key=lambda item: str(item[0])):
        lines.append(f'parley_route_latency_ms{{route="{route}"}} {latency:.2f}')
    cache = state.cache.stats()
    lines += [
        "# HELP parley_cache_lookups_total Semantic cache lookups by this process.",
        "# TYPE parley_cache_lookups_total counter",
        f"parley_cache_lookups_total {cache['lookups']}",
        "# HELP parley_cache_hits_total Semantic cache hits by this process.",
        "# TYPE parley_cache_hits_total counter",
        f"parley_cache_hits_total {cache['hits']}",
    ]
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
