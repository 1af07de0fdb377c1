"""What the HTTP providers share: one pooled client, failures turned into ProviderError, Server-Sent Events parsed.

The client is httpx2, not httpx 0.28: httpcore 1.0's pool rescans every connection on each request, which at 200
concurrent calls cost 40 ms of CPU per call (20 calls/s; bench/router_overhead.py measured httpx2 at 1.1 ms).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.utils import parsedate_to_datetime
from typing import Any

import httpx2 as httpx

from core.llm.base import ProviderError

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
MAX_CONNECTIONS = 200
ERROR_DETAIL_CHARS = 300
DEFAULT_TIMEOUT_S = 60.0


def new_client(base_url: str, headers: dict[str, str]) -> httpx.AsyncClient:
    # Every call passes its own timeout from ChatParams; this default only bounds a call that forgot to.
    limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)
    return httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=DEFAULT_TIMEOUT_S)


def retry_after_s(value: str | None) -> float | None:
    """Retry-After as seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def status_error(provider: str, response: httpx.Response, body: bytes) -> ProviderError:
    """A non-2xx answer, with the vendor's own error message when its body has one (never the request's headers)."""
    detail = body[:ERROR_DETAIL_CHARS].decode("utf-8", "replace")
    try:
        error = json.loads(body).get("error")
        if isinstance(error, dict) and error.get("message"):
            detail = str(error["message"])[:ERROR_DETAIL_CHARS]
    except (ValueError, AttributeError):
        pass
    return ProviderError(
        f"{provider} answered {response.status_code}: {detail}",
        provider=provider,
        retryable=response.status_code in RETRYABLE_STATUS,
        status=response.status_code,
        retry_after_s=retry_after_s(response.headers.get("retry-after")),
    )


def transport_error(provider: str, exc: BaseException) -> ProviderError:
    timed_out = isinstance(exc, httpx.TimeoutException | TimeoutError)
    kind = "timed out" if timed_out else "could not be reached"
    return ProviderError(
        f"{provider} {kind} ({type(exc).__name__})", provider=provider, retryable=True, timed_out=timed_out
    )


def malformed(provider: str, what: str) -> ProviderError:
    # A vendor answering garbage is having a bad moment: another attempt may well succeed.
    return ProviderError(f"{provider} sent a malformed response: {what}", provider=provider, retryable=True)


async def post_json(
    client: httpx.AsyncClient, provider: str, path: str, payload: dict[str, Any], *, timeout_s: float
) -> dict[str, Any]:
    """POST and parse a JSON answer, within `timeout_s` overall (a vendor dripping bytes cannot hold it longer)."""
    try:
        async with asyncio.timeout(timeout_s):
            response = await client.post(path, json=payload, timeout=timeout_s)
    except (httpx.HTTPError, TimeoutError) as exc:
        raise transport_error(provider, exc) from None
    if response.status_code >= 400:
        raise status_error(provider, response, response.content)
    try:
        body = response.json()
    except ValueError:
        raise malformed(provider, "not JSON") from None
    if not isinstance(body, dict):
        raise malformed(provider, "not a JSON object")
    return body


@asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient, provider: str, path: str, payload: dict[str, Any], *, timeout_s: float
) -> AsyncIterator[httpx.Response]:
    """POST for a stream; `timeout_s` bounds connecting and each wait for the next bytes."""
    request = client.build_request("POST", path, json=payload, timeout=timeout_s)
    try:
        response = await client.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise transport_error(provider, exc) from None
    try:
        if response.status_code >= 400:
            raise status_error(provider, response, await response.aread())
        yield response
    finally:
        await response.aclose()


async def drain(events: AsyncIterator[Any], *, within_s: float = 0.5) -> None:
    """Read what follows the end-of-stream marker, so the connection goes back to the pool instead of being closed
    (a new TCP and TLS handshake for every streamed answer otherwise)."""
    try:
        async with asyncio.timeout(within_s):
            async for _ in events:
                pass
    except (ProviderError, TimeoutError):
        pass  # the connection is simply not reused


async def sse_events(provider: str, response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """(event, data) pairs of a Server-Sent Events body; the event name is "message" when the server gives none."""
    event, data = "message", []
    try:
        async for line in response.aiter_lines():
            if not line:
                if data:
                    yield event, "\n".join(data)
                event, data = "message", []
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif line.startswith("event:"):
                event = line[6:].strip()
    except httpx.HTTPError as exc:
        raise transport_error(provider, exc) from None
    if data:
        yield event, "\n".join(data)


def parse_json(provider: str, data: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        raise malformed(provider, "an event that is not JSON") from None
    if not isinstance(value, dict):
        raise malformed(provider, "an event that is not a JSON object")
    return value
