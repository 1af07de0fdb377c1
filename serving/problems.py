"""RFC 9457 problem details: every 4xx/5xx body Parley sends, with no stack traces and no echoed input."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

MEDIA_TYPE = "application/problem+json"
_TYPE_BASE = "urn:parley:problem:"


class ProblemDetails(BaseModel):
    """The body of every error response (RFC 9457); some problems add members such as `errors` or `checks`."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None


class Problem(StarletteHTTPException):
    """Raise from anywhere in a request to answer with a problem document.

    It is an HTTPException so that FastAPI passes it through untouched even when raised while the body is read.
    """

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(status, detail, headers)
        self.status = status
        self.kind = kind
        self.title = title
        self.extensions = extensions


def problem_document(
    status: int, detail: str | None, *, kind: str | None = None, title: str | None = None, **extensions: Any
) -> dict[str, Any]:
    document = {
        "type": f"{_TYPE_BASE}{kind}" if kind else "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extensions,
    }
    return {key: value for key, value in document.items() if value is not None}


def problem_bytes(status: int, detail: str, *, kind: str | None = None, request_id: str | None = None) -> bytes:
    """The same document as raw bytes, for middleware that answers before the app runs."""
    return json.dumps(problem_document(status, detail, kind=kind, request_id=request_id)).encode()


def _respond(request: Request, status: int, detail: str | None, *, headers=None, **kwargs: Any) -> JSONResponse:
    document = problem_document(
        status, detail, instance=request.url.path, request_id=getattr(request.state, "request_id", None), **kwargs
    )
    return JSONResponse(document, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    errors = []
    for error in exc.errors():
        location, *path = error["loc"] or ("body",)
        errors.append(
            {
                "location": str(location),
                "field": ".".join(str(part) for part in path) or str(location),
                "message": error["msg"],
                "type": error["type"],
            }
        )
    return errors


async def _on_problem(request: Request, exc: Problem) -> JSONResponse:
    return _respond(
        request, exc.status, exc.detail, kind=exc.kind, title=exc.title, headers=exc.headers, **exc.extensions
    )


async def _on_http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != HTTPStatus(exc.status_code).phrase else None
    return _respond(request, exc.status_code, detail, headers=getattr(exc, "headers", None))


async def _on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = _field_errors(exc)
    if any(error["type"] == "json_invalid" for error in errors):
        return _respond(request, 400, "The request body is not valid JSON.", kind="invalid-json")
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return _respond(request, 422, summary, kind="validation-error", title="Invalid request", errors=errors)


async def _on_encoder_not_ready(request: Request, exc: Exception) -> JSONResponse:
    return _respond(
        request,
        503,
        "The platform is still loading its language model; retry shortly.",
        kind="warming-up",
        headers={"Retry-After": "5"},
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Unexpected exceptions are answered by RequestContextMiddleware, which alone knows the response has not begun."""
    from core.embeddings import EncoderNotReady

    app.add_exception_handler(EncoderNotReady, _on_encoder_not_ready)
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem documents a route can answer with."""
    return {
        status: {"model": ProblemDetails, "content": {MEDIA_TYPE: {}}, "description": HTTPStatus(status).phrase}
        for status in statuses
    }
