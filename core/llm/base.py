"""What every model provider speaks: chat messages in, a completion (or a stream of deltas) out, errors classified.

A provider is one small module (core/llm/openai.py, core/llm/anthropic.py, ...) that translates this interface to one
vendor protocol. It never retries and never falls back: that is the router's job (core/llm/resilience.py), which needs
to know only whether a failure is worth retrying and how long the vendor asked it to wait.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from core.schemas import Source
    from core.vectors import VectorHit

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class ChatParams:
    model: str
    max_tokens: int = 512
    temperature: float = 0.2
    # Whole call for chat(); time to the first token, then between tokens, for stream().
    timeout_s: float = 30.0
    # What retrieval found for this question: the knowledge-base provider answers from it (an LLM reads it in its
    # prompt, core/llm/prompt.py).
    passages: tuple[VectorHit, ...] = ()


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    usage: Usage
    finish_reason: str | None
    sources: tuple[Source, ...] = ()
    # False when the provider itself knows it has no good answer (the knowledge base found nothing close enough).
    confident: bool = True
    # The provider's own estimate that the answer is right, when it has one (the knowledge base does; models do not).
    quality: float | None = None


@dataclass(frozen=True)
class Delta:
    """One piece of a stream: text as it arrives; the last piece carries usage and the finish reason."""

    text: str = ""
    usage: Usage | None = None
    finish_reason: str | None = None


class ProviderError(Exception):
    """A call that produced no answer.

    `retryable`: the same provider may succeed on another attempt (connection failures, timeouts, 429, 5xx); a request
    the vendor refused as such (400, 401, 404) will not. Either way the router may fall back to another provider.
    `retry_after_s`: what the vendor asked for (Retry-After), if anything.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        retryable: bool,
        status: int | None = None,
        retry_after_s: float | None = None,
        timed_out: bool = False,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.retryable = retryable
        self.status = status
        self.retry_after_s = retry_after_s
        self.timed_out = timed_out  # the caller has already waited the whole timeout for this one


class Provider(Protocol):
    name: str

    async def chat(self, messages: Sequence[ChatMessage], params: ChatParams) -> Completion: ...

    def stream(self, messages: Sequence[ChatMessage], params: ChatParams) -> AsyncIterator[Delta]: ...

    async def aclose(self) -> None: ...
