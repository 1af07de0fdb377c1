"""CORS for the web widget, and only for origins a live widget key allows.

A preflight carries no key, so it is allowed when any live widget key lists the origin; the real request then passes
`tenant_access`, which checks the origin against that very key and marks it in the request state. Only then does the
response get CORS headers, so a page on any other origin cannot read Parley's answers.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.widgets import origin_has_a_widget
from serving.problems import MEDIA_TYPE, problem_bytes

WIDGET_PATHS = ("/v1/conversations", "/v1/messages")
_ALLOWED_HEADERS = b"authorization, content-type, x-visitor-token, x-request-id"
_EXPOSED_HEADERS = b"x-request-id, retry-after"


class WidgetCorsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(WIDGET_PATHS):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        origin = headers.get(b"origin", b"").decode("latin-1")
        if scope["method"] == "OPTIONS" and origin and b"access-control-request-method" in headers:
            await self._preflight(scope, send, origin)
            return

        async def send_with_cors(message: Message) -> None:
            allowed = scope.get("state", {}).get("cors_origin")
            if message["type"] == "http.response.start" and allowed and allowed == origin:
                message["headers"] = [
                    *message.get("headers", []),
                    (b"access-control-allow-origin", origin.encode("latin-1")),
                    (b"access-control-expose-headers", _EXPOSED_HEADERS),
                    (b"vary", b"Origin"),
                ]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, scope: Scope, send: Send, origin: str) -> None:
        async with scope["app"].state.db.connection() as conn:
            allowed = await origin_has_a_widget(conn, origin=origin)
        if not allowed:
            body = problem_bytes(403, "No widget is allowed on this origin.", kind="origin-not-allowed")
            start_headers = [(b"content-type", MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 403, "headers": start_headers})
            await send({"type": "http.response.body", "body": body})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": [
                    (b"access-control-allow-origin", origin.encode("latin-1")),
                    (b"access-control-allow-methods", b"GET, POST"),
                    (b"access-control-allow-headers", _ALLOWED_HEADERS),
                    (b"access-control-max-age", b"600"),
                    (b"vary", b"Origin"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})
