"""The OpenAI Chat Completions protocol: OpenAI itself, Azure OpenAI, vLLM, Ollama, llama.cpp's server, Groq, ...

Streaming asks for `stream_options.include_usage`, so the last chunk carries the token counts the router meters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from core.llm import http
from core.llm.base import ChatMessage, ChatParams, Completion, Delta, Usage

PATH = "/chat/completions"


class OpenAIProvider:
    def __init__(self, *, name: str, base_url: str, api_key: str | None) -> None:
        self.name = name
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = http.new_client(base_url.rstrip("/"), headers)

    def _payload(self, messages: Sequence[ChatMessage], params: ChatParams, *, stream: bool) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": params.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
        }
        if stream:
            payload |= {"stream": True, "stream_options": {"include_usage": True}}
        return payload

    def _usage(self, body: dict[str, Any]) -> Usage:
        usage = body.get("usage")
        if not isinstance(usage, dict):
            raise http.malformed(self.name, "no usage")
        return Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))

    async def chat(self, messages: Sequence[ChatMessage], params: ChatParams) -> Completion:
        body = await http.post_json(
            self._client, self.name, PATH, self._payload(messages, params, stream=False), timeout_s=params.timeout_s
        )
        try:
            choice = body["choices"][0]
            text = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise http.malformed(self.name, "no choices[0].message.content") from None
        return Completion(
            text=text,
            model=str(body.get("model") or params.model),
            usage=self._usage(body),
            finish_reason=choice.get("finish_reason"),
        )

    async def stream(self, messages: Sequence[ChatMessage], params: ChatParams) -> AsyncIterator[Delta]:
        payload = self._payload(messages, params, stream=True)
        finish_reason = None
        async with http.open_stream(self._client, self.name, PATH, payload, timeout_s=params.timeout_s) as response:
            events = http.sse_events(self.name, response)
            async for _, data in events:
                if data.strip() == "[DONE]":
                    await http.drain(events)
                    return
                chunk = http.parse_json(self.name, data)
                if "error" in chunk:  # some servers report a failure mid-stream as an event
                    raise http.malformed(self.name, f"error event: {str(chunk['error'])[:200]}")
                for choice in chunk.get("choices") or ():
                    finish_reason = choice.get("finish_reason") or finish_reason
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        yield Delta(text=text)
                if chunk.get("usage"):
                    yield Delta(usage=self._usage(chunk), finish_reason=finish_reason)
        raise http.malformed(self.name, "the stream ended without [DONE]")

    async def aclose(self) -> None:
        await self._client.aclose()
