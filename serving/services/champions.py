"""The tenants' champion intent models in a serving process: loaded from the registry, cached per tenant, replaced
when the champion alias moves — without a restart, and never blocking a chat turn.

A turn asks `predict(tenant_id=..., text=...)`. The first time for a tenant (and again every `refresh_s`) the alias
is looked up in the background; a new version is downloaded and loaded in the background, at most once per version
per process, while turns keep using the model they had (or none). A turn therefore never waits for MLflow, and a
tenant without a model costs one cheap lookup per refresh period. Models are evicted least recently used beyond
`max_models`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.registry import Registry
from models.intent import IntentPrediction

log = logging.getLogger(__name__)

KIND = "intent"
REFRESH_S = 30.0
MAX_MODELS = 64  # an int8 MiniLM and its head: about 30 MB each


@dataclass
class _Entry:
    checked_at: float = float("-inf")
    version: int | None = None
    model: object | None = None  # models.intent.model.IntentModel
    loading: int | None = None  # the version being loaded, if any


class Champions:
    def __init__(
        self,
        registry: Registry,
        *,
        cache_dir: Path,
        refresh_s: float = REFRESH_S,
        max_models: int = MAX_MODELS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.cache_dir = cache_dir
        self.refresh_s = refresh_s
        self.max_models = max_models
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._tasks: set[asyncio.Task] = set()
        self.loads = 0  # how many models this process has loaded (tests and /metrics read it)

    async def predict(self, *, tenant_id: str, text: str) -> IntentPrediction | None:
        """The tenant's champion's prediction, or None while it has none (or it is still loading)."""
        entry = self._entries.get(tenant_id)
        if entry is None:
            entry = self._entries[tenant_id] = _Entry()
        self._entries.move_to_end(tenant_id)
        if self._clock() - entry.checked_at >= self.refresh_s:
            entry.checked_at = self._clock()
            self._spawn(self._refresh(tenant_id, entry))
        model = entry.model
        if model is None:
            return None
        return await asyncio.to_thread(model.predict_one, text)

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refresh(self, tenant_id: str, entry: _Entry) -> None:
        try:
            if not self.registry.exists():
                return
            champion = await asyncio.to_thread(self.registry.champion, kind=KIND, tenant_id=tenant_id)
            if champion is None:
                entry.version = entry.model = None  # demoted or deleted: stop using it
                return
            if champion.version in (entry.version, entry.loading):
                return
            entry.loading = champion.version
            model = await asyncio.to_thread(self._load, tenant_id, champion.version)
            entry.version, entry.model, entry.loading = champion.version, model, None
            self.loads += 1
            log.info("intent model %s v%d loaded", tenant_id, champion.version)
            self._evict()
        except Exception:
            entry.loading = None
            log.exception("could not refresh the intent model of tenant %s", tenant_id)

    def _load(self, tenant_id: str, version: int):
        from models.intent.model import IntentModel
        from models.intent.pyfunc import ARTIFACT

        folder = self.cache_dir / f"{KIND}__{tenant_id}" / str(version)
        if not (folder / "artifacts" / ARTIFACT).exists():
            self.registry.download(kind=KIND, tenant_id=tenant_id, version=version, into=folder)
        return IntentModel.load(folder / "artifacts" / ARTIFACT)

    def _evict(self) -> None:
        loaded = [tenant for tenant, entry in self._entries.items() if entry.model is not None]
        for tenant in loaded[: max(0, len(loaded) - self.max_models)]:
            self._entries[tenant] = _Entry()

    async def settle(self, timeout_s: float = 60.0) -> None:
        """Wait for the background lookups and loads in flight (tests, and shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    def loaded_version(self, tenant_id: str) -> int | None:
        entry = self._entries.get(tenant_id)
        return entry.version if entry and entry.model is not None else None
