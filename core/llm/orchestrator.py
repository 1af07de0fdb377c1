"""Which tier answers a question, walked in the order of the tenant's policy.

- `cache`: an earlier answer to the same standalone question (core/llm/cache.py);
- `kb`: the knowledge-base answerer, when it is confident; when it is not, the walk goes on;
- `local`: the small local model, when one is configured;
- paid `provider/model` tiers: one chain, ordered by the strategy and steered by the budget (core/llm/strategy.py),
  made to survive vendor failures by the router (core/llm/router.py), placed where the policy lists its first paid tier.

A per-intent route (core/llm/intent_routes.py), when the turn's intent has one, refines the walk: a free tier (`kb`,
`local`) moves to the front (after the cache), and a `kb` route lets the answerer answer whenever it is confident
(the pipelines measured it good enough for that intent); a paid route leads the paid chain but leaves the free tiers
in front of it, so the knowledge base still answers for free what it is sure of (a route says which model answers
what the free tiers cannot, not that they should not try). An `explore_share` of conversations keeps the plain policy.

If nothing answered (the kb was not confident and every model failed or none is allowed), the knowledge base answers
anyway, saying plainly when it found nothing: a customer always gets a reply. The question is embedded once; retrieval
runs only if the walk gets past the cache, and the conversation's history is read only if a model will see it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from core.embeddings import AsyncEncoder
from core.kb.service import KnowledgeBase
from core.llm.base import ChatMessage, ChatParams, Provider, ProviderError, Usage
from core.llm.cache import CACHEABLE_TIERS, SemanticCache, is_standalone, policy_hash
from core.llm.catalog import Catalog
from core.llm.intent_routes import IntentRoute, IntentRoutes, RoutedBy, explores
from core.llm.kb import RETRIEVE, KnowledgeBaseProvider, stream_words
from core.llm.policy import FREE_TIERS
from core.llm.prompt import build_messages, cited_sources, grounding
from core.llm.router import NoRouteAvailable, Route, Router
from core.llm.routing import RoutingContext
from core.llm.strategy import paid_chain
from core.metrics import Outcome
from core.schemas import Source
from core.vectors import VectorHit

LOCAL = "local"
History = Callable[[], Awaitable[Sequence[ChatMessage]]]


async def no_history() -> Sequence[ChatMessage]:
    return ()


@dataclass(frozen=True)
class Ask:
    tenant_id: str
    question: str
    context: RoutingContext
    conversation_id: str | None = None
    # Earlier turns, read only when a model is about to answer.
    history: History = no_history
    # Instead of the policy's tiers (its strategy and budget still apply): e.g. ("kb",), or the one model a caller
    # named, already checked against the policy's allowed models.
    tiers: tuple[str, ...] | None = None
    intent: str | None = None  # the question's intent, when an intent model gave one
    # The intent model found the question outside what the tenant's bot knows: no model may make up an answer.
    out_of_scope: bool = False
    max_tokens: int = 512
    temperature: float = 0.2


@dataclass
class Answered:
    text: str = ""
    sources: list[Source] = field(default_factory=list)
    confident: bool = True
    tier: str = "kb"  # cache, kb, local or llm
    quality: float | None = None  # the tier's own estimate that the answer is right (the kb has one)
    model: str | None = None  # provider/model that wrote the text (for a cache hit: that wrote it first)
    usage: Usage = field(default_factory=lambda: Usage(0, 0))
    cost_usd: float = 0.0
    outcome: Outcome = "ok"  # fallback: a tier failed and a later one answered; error: the answer broke off
    cache_hit: bool = False
    skipped: list[str] = field(default_factory=list)  # why tiers before the answering one did not answer
    reason: str = ""  # why the paid chain was what it was
    intent: str | None = None
    out_of_scope: bool = False
    # "intent": a per-intent route led the walk; "explore": one existed but this conversation kept the plain policy
    routed_by: RoutedBy = "policy"

    @property
    def provider(self) -> str | None:
        return self.model.split("/", 1)[0] if self.model else None


@dataclass
class AnswerStream:
    """Text pieces as they are produced; `answered` is complete once `pieces` is exhausted."""

    pieces: AsyncIterator[str]
    answered: Answered
    remember: Callable[[], Awaitable[None]]  # store the answer in the cache, if it may be reused


class Orchestrator:
    def __init__(
        self,
        *,
        encoder: AsyncEncoder,
        kb: KnowledgeBase,
        kb_provider: KnowledgeBaseProvider,
        router: Router,
        catalog: Catalog,
        cache: SemanticCache | None = None,
        local_model: str | None = None,
        intent_routes: IntentRoutes | None = None,
    ) -> None:
        self.encoder = encoder
        self.kb = kb
        self.kb_provider: Provider = kb_provider
        self.router = router
        self.catalog = catalog
        self.cache = cache
        self.local_model = local_model  # the model name of the `local` provider, when one is configured
        self.intent_routes = intent_routes

    async def _intent_route(self, ask: Ask, answered: Answered) -> IntentRoute | None:
        """The route that leads this turn's walk, if its intent has one the policy allows."""
        if ask.intent is None or ask.tiers is not None or self.intent_routes is None:
            return None
        route = await self.intent_routes.route(tenant_id=ask.tenant_id, intent=ask.intent)
        if route is None:
            return None
        if route.tier not in ask.context.policy.tiers:
            answered.skipped.append(f"intent route {ask.intent} -> {route.tier}: not a tier of the policy")
            return None
        if explores(conversation_id=ask.conversation_id, share=route.explore_share):
            answered.routed_by = "explore"
            return None
        answered.routed_by = "intent"
        return route

    def _steps(self, ask: Ask, lead: str | None = None) -> tuple[list[str | list[Route]], str]:
        """The policy's tiers with the paid ones replaced by one chain, at the place of the first; `lead` (a tier of
        the policy) goes first after the cache if it is a free one, first in the chain if it is a paid one."""
        context = ask.context
        policy = context.policy if ask.tiers is None else context.policy.model_copy(update={"tiers": list(ask.tiers)})
        decision = paid_chain(
            policy=policy,
            catalog=self.catalog,
            spent_this_month_usd=context.spent_this_month_usd,
            conversation_cost_usd=context.conversation_cost_usd,
            latency_ms=self.router.latency_ms(),
            prefer=Route(*lead.split("/", 1)) if lead and lead not in FREE_TIERS else None,
        )
        tiers = policy.tiers
        if ask.out_of_scope:
            tiers = [tier for tier in tiers if tier in ("cache", "kb")]
        if lead is not None and lead in FREE_TIERS:
            cache = [tier for tier in tiers if tier == "cache"]
            tiers = cache + [lead] + [tier for tier in tiers if tier not in ("cache", lead)]
        steps: list[str | list[Route]] = []
        for tier in tiers:
            if tier in FREE_TIERS:
                steps.append(tier)
            elif not any(isinstance(step, list) for step in steps):
                steps.append(decision.chain)
        return steps, decision.reason

    def _models_in(self, steps: list[str | list[Route]]) -> bool:
        return any((step == LOCAL and self.local_model) or (isinstance(step, list) and step) for step in steps)

    def stream(self, ask: Ask, *, streaming: bool = True) -> AnswerStream:
        answered = Answered(intent=ask.intent, out_of_scope=ask.out_of_scope)
        standalone = is_standalone(ask.question, earlier_questions=ask.context.earlier_questions)
        # What the cache keys answers by: the policy, and the intent route that refined it (an answer the kb gave
        # under a kb route for one intent is not good enough for a turn routed without it).
        routing = {"policy": policy_hash(ask.context.policy)}
        found: dict[str, object] = {}  # the question's vector and passages, once computed

        async def vector() -> np.ndarray:
            if "vector" not in found:
                found["vector"] = await self.encoder.encode_one(ask.question)
            return found["vector"]  # type: ignore[return-value]

        async def passages() -> list[VectorHit]:
            if "hits" not in found:
                found["hits"] = await self.kb.search(
                    tenant_id=ask.tenant_id, query=ask.question, limit=RETRIEVE, dense=await vector()
                )
            return found["hits"]  # type: ignore[return-value]

        async def from_kb() -> AsyncIterator[str]:
            completion = await self.kb_provider.chat(
                [ChatMessage("user", ask.question)], ChatParams(model="kb", passages=tuple(await passages()))
            )
            answered.text, answered.sources, answered.confident = (
                completion.text,
                list(completion.sources),
                completion.confident,
            )
            answered.tier, answered.model, answered.quality = "kb", None, completion.quality
            for piece in stream_words(completion.text):
                yield piece

        async def from_models(chain: list[Route], tier: str) -> AsyncIterator[str]:
            grounded = grounding(await passages())
            messages = build_messages(question=ask.question, passages=grounded, history=await ask.history())
            if streaming:
                routed = self.router.stream(
                    chain=chain, messages=messages, max_tokens=ask.max_tokens, temperature=ask.temperature
                )
                parts: list[str] = []
                try:
                    async for delta in routed.deltas:  # NoRouteAvailable, before any text, goes to the caller
                        if delta.text:
                            parts.append(delta.text)
                            yield delta.text
                except ProviderError as exc:  # after the first token: the answer broke off; keep what was said
                    answered.skipped.append(f"{routed.route}: {exc} (after the answer had started)")
                    answered.outcome = "error"
                failed_routes = list(routed.skipped)
                route, usage, cost, text = routed.route, routed.usage or Usage(0, 0), routed.cost_usd, "".join(parts)
            else:
                done = await self.router.complete(
                    chain=chain, messages=messages, max_tokens=ask.max_tokens, temperature=ask.temperature
                )
                failed_routes = list(done.skipped)
                route, usage, cost, text = done.route, done.usage, done.cost_usd, done.text
                yield text
            answered.skipped.extend(failed_routes)
            answered.text, answered.sources = text, cited_sources(text, grounded)
            answered.tier, answered.model, answered.quality = tier, str(route) if route else None, None
            # An answer that cites none of the passages it was shown did not come from the knowledge base: the model
            # declined (and offered a person) or went off script. Either way: offer a person, never cache it.
            answered.usage, answered.cost_usd = usage, cost
            answered.confident = bool(answered.sources) or not grounded
            if failed_routes and answered.outcome == "ok":  # an earlier model of the chain failed or was open
                answered.outcome = "fallback"

        async def walk() -> AsyncIterator[str]:
            lead = await self._intent_route(ask, answered)
            if lead is not None:
                routing["policy"] += f"+{lead.tier}"
            steps, answered.reason = self._steps(ask, lead.tier if lead else None)
            # A kb route for this intent: the kb's answers were measured good enough, its own estimate need not be.
            bar = 0.0 if lead is not None and lead.tier == "kb" else ask.context.policy.quality_bar
            for index, step in enumerate(steps):
                if step == "cache":
                    if self.cache is None or not standalone:
                        continue
                    hit = await self.cache.lookup(
                        tenant_id=ask.tenant_id,
                        state=ask.context.cache,
                        policy=routing["policy"],
                        vector=await vector(),
                    )
                    if hit is None:
                        continue
                    answered.text, answered.sources, answered.model = hit.text, hit.sources, hit.model
                    answered.tier, answered.cache_hit = "cache", True
                    for piece in stream_words(hit.text):
                        yield piece
                    return
                if step == "kb":
                    pieces = [piece async for piece in from_kb()]
                    # Below the tenant's bar the kb answers only if no model comes after it to do better.
                    good_enough = (answered.quality or 0.0) >= bar or not self._models_in(steps[index + 1 :])
                    if answered.confident and good_enough:
                        for piece in pieces:
                            yield piece
                        return
                    continue
                if step == LOCAL:
                    if self.local_model is None:
                        answered.skipped.append("local: no local model configured")
                        continue
                    chain, tier = [Route(LOCAL, self.local_model)], LOCAL
                else:
                    chain, tier = step, "llm"  # type: ignore[assignment]
                    if not chain:
                        answered.skipped.append(f"paid tiers: {answered.reason}")
                        continue
                try:
                    async for piece in from_models(chain, tier):
                        yield piece
                    return
                except NoRouteAvailable as exc:
                    answered.skipped.extend(exc.skipped)
                    answered.outcome = "fallback"
            # Nothing answered: the knowledge base has the last word, even if all it can say is that it found nothing.
            if answered.text:  # the kb tier already answered, without confidence
                for piece in stream_words(answered.text):
                    yield piece
            else:
                async for piece in from_kb():
                    yield piece

        async def remember() -> None:
            reusable = (
                self.cache is not None
                and standalone
                and "cache" in (ask.tiers or ask.context.policy.tiers)
                and not answered.cache_hit
                and answered.confident
                and answered.outcome != "error"
                and answered.tier in CACHEABLE_TIERS
                and "vector" in found
            )
            if reusable:
                await self.cache.store(
                    tenant_id=ask.tenant_id,
                    state=ask.context.cache,
                    policy=routing["policy"],
                    question=ask.question,
                    vector=found["vector"],  # type: ignore[arg-type]
                    text=answered.text,
                    sources=answered.sources,
                    tier=answered.tier,
                    model=answered.model,
                )

        return AnswerStream(pieces=walk(), answered=answered, remember=remember)

    async def answer(self, ask: Ask) -> AnswerStream:
        """The whole answer at once (models called without streaming, so a failed attempt may be retried)."""
        stream = self.stream(ask, streaming=False)
        async for _ in stream.pieces:
            pass
        return stream
