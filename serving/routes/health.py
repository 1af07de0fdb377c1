from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from core.health import readiness
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
    if failed:
        document = problem_document(
            503, f"Not ready: {', '.join(failed)} did not answer.", kind="not-ready", failed=failed, checks=checks
        )
        return JSONResponse(document, status_code=503, media_type=MEDIA_TYPE)
    return JSONResponse({"status": "ready", "checks": checks})
