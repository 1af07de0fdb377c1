"""Outermost ASGI layer: a request id on every request and response, a bounded request body, one access-log line."""

from __future__ import annotations

import logging
import re
import secrets
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.problems import MEDIA_TYPE, Problem, problem_bytes

log = logging.getLogger(__name__)
access_log = logging.getLogger("parley.access")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, path_limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.path_limits = path_limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        headers = dict(scope["headers"])
        offered = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = offered if _SAFE_REQUEST_ID.match(offered) else secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status_holder = {"status": 500, "started": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder.update(status=message["status"], started=True)
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        limit = self.path_limits.get(scope["path"], self.max_body_bytes)
        declared = headers.get(b"content-length")
        try:
            if declared is not None and declared.isdigit() and int(declared) > limit:
                await self._too_large(send_with_id, request_id, limit)
                return
            await self.app(scope, self._bounded(receive, limit), send_with_id)
        except Exception as exc:
            # Last resort: the traceback goes to the server log; the caller gets a problem document and a request id.
            if status_holder["started"]:
                raise
            if isinstance(exc, Problem) and exc.status == 413:
                await self._too_large(send_with_id, request_id, limit)
            else:
                log.exception("unhandled error on %s %s rid=%s", scope["method"], scope["path"], request_id)
                await self._send_problem(
                    send_with_id,
                    500,
                    "An unexpected error occurred; quote the request id to the operator.",
                    None,
                    request_id,
                )
        finally:
            access_log.info(
                "%s %s %s %.1fms rid=%s",
                scope["method"],
                scope["path"],
                status_holder["status"],
                (time.perf_counter() - started) * 1000,
                request_id,
            )

    @staticmethod
    def _too_large_detail(limit: int) -> str:
        return f"The request body exceeds the limit of {limit} bytes."

    def _bounded(self, receive: Receive, limit: int) -> Receive:
        seen = 0

        async def receive_bounded() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # A chunked body with no Content-Length ran past the limit while the app was reading it.
                    raise Problem(413, self._too_large_detail(limit), kind="payload-too-large")
            return message

        return receive_bounded

    async def _too_large(self, send: Send, request_id: str, limit: int) -> None:
        await self._send_problem(send, 413, self._too_large_detail(limit), "payload-too-large", request_id)

    @staticmethod
    async def _send_problem(send: Send, status: int, detail: str, kind: str | None, request_id: str) -> None:
        body = problem_bytes(status, detail, kind=kind, request_id=request_id)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
