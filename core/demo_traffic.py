"""Realistic demo traffic, written through the same tables and outbox events as live chat.

Customers ask real Banking77 utterances (../shared/data/banking77), one intent per conversation, sometimes with a
follow-up or a "can I talk to a person?"; the bot answers from the cache, the knowledge base or a paid model with
realistic latencies, token counts and prices, sometimes without confidence (and offers a person); some answers are
rated; a few customers type an email address, a phone number or a card number. Conversations start over the last
`days` days, more on weekdays and in office hours. Every payload comes from the builders the serving tier uses
(core/conversations.py, core/metrics.py), so the lakehouse cannot tell demo traffic from live traffic.

Deterministic for a seed. Rows are written with COPY, in one transaction per call.
"""

from __future__ import annotations

import csv
import json
import random
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from psycopg import AsyncConnection

from core import intents
from core.conversations import feedback_event, handoff_event, message_event, started_event
from core.metrics import UsageRecord
from core.tenancy import new_id

NO_CONFIDENT_ANSWER = "no confident answer"
CUSTOMER_ASKED = "customer asked for a person"
# provider/model, share of model answers, $ per million input and output tokens (list prices of the usual tiers)
MODELS = (("openai/gpt-4o-mini", 0.8, 0.15, 0.60), ("openai/gpt-4o", 0.2, 2.50, 10.0))
CHANNELS = (("widget", 0.7), ("api", 0.2), ("openai", 0.1))
FOLLOW_UPS = ("thanks!", "that didn't help", "ok, and how long does that take?", "great, thank you")
PII = (
    "you can email me at {first}.{last}@example.com",
    "my number is +44 20 7946 0{n:03d}",
    "my card is 4111 1111 1111 1111",
    "call me on 020 7946 0{n:03d}",
)
NAMES = ("jane", "omar", "li", "sofia", "kwame", "anna", "ravi", "maria")
ASK_FOR_PERSON = "can I talk to a person?"
NOT_FOUND = "I could not find this in our help articles. Shall I connect you with a person?"


@dataclass(frozen=True)
class Utterance:
    text: str
    intent: str


def banking77(data_dir: Path, split: str = "train") -> list[Utterance]:
    path = data_dir / "banking77" / f"{split}.csv"
    with path.open(newline="") as file:
        return [Utterance(row["text"], row["category"]) for row in csv.DictReader(file)]


def _answer(intent: str) -> str:
    topic = intent.replace("_", " ")
    return (
        f"About {topic}: open the app, go to Help and choose '{topic.capitalize()}'; the steps there cover it. "
        "If anything looks wrong, reply here and we will look into it."
    )


@dataclass
class Traffic:
    conversations: list[tuple] = field(default_factory=list)  # rows for the conversations table
    messages: list[tuple] = field(default_factory=list)
    feedback: list[tuple] = field(default_factory=list)
    usage: list[tuple] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)  # (event_id, tenant_id, type, payload json, at)
    # What each tenant labelled to train its intent model: {tenant_id: [(text, intent)]}
    examples: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        counts = {
            name: len(getattr(self, name)) for name in ("conversations", "messages", "feedback", "usage", "events")
        }
        return counts | {"examples": sum(len(rows) for rows in self.examples.values())}


def _start_times(rng: random.Random, count: int, *, end: datetime, days: int) -> list[datetime]:
    times = []
    while len(times) < count:
        at = end - timedelta(seconds=rng.uniform(0, days * 86400))
        weight = (1.0 if at.weekday() < 5 else 0.5) * (1.0 if 8 <= at.hour < 20 else 0.25)
        if rng.random() < weight:
            times.append(at)
    return sorted(times)


EXAMPLES_PER_INTENT = 10


def generate(
    *,
    tenant_ids: Sequence[str],
    conversations_per_tenant: int,
    utterances: Sequence[Utterance],
    days: int = 28,
    end: datetime | None = None,
    seed: int = 0,
    pii_share: float = 0.03,
    examples_per_intent: int = EXAMPLES_PER_INTENT,
) -> Traffic:
    rng = random.Random(seed)  # noqa: S311 (demo data, not secrets)
    end = end or datetime.now(UTC) - timedelta(hours=1)
    by_intent: dict[str, list[str]] = {}
    for utterance in utterances:
        by_intent.setdefault(utterance.intent, []).append(utterance.text)
    intents = sorted(by_intent)
    traffic = Traffic()
    for tenant_id in tenant_ids:
        # Each tenant has its own mix: what its customers ask about and how good its knowledge base is.
        tenant = _Tenant(
            tenant_id, popular=rng.sample(intents, k=min(len(intents), 25)), kb_quality=rng.uniform(0.75, 0.95)
        )
        for started in _start_times(rng, conversations_per_tenant, end=end, days=days):
            intent = rng.choice(tenant.popular) if rng.random() < 0.8 else rng.choice(intents)
            _Conversation(rng, traffic, tenant, intent, started, pii_share).play(by_intent[intent])
        # The tenant labelled a few examples of what its customers ask most, as a tenant starting out would (drawn
        # apart from the conversations' generator, so they leave the traffic as it was).
        labelling = random.Random(f"{seed}:{tenant_id}")  # noqa: S311
        traffic.examples[tenant_id] = [
            (text, intent)
            for intent in sorted(tenant.popular)
            for text in labelling.sample(by_intent[intent], k=min(examples_per_intent, len(by_intent[intent])))
        ]
    return traffic


@dataclass(frozen=True)
class _Tenant:
    id: str
    popular: list[str]
    kb_quality: float


class _Conversation:
    """One conversation played out: the customer's turns, the bot's replies, usage, handoff and feedback."""

    def __init__(
        self, rng: random.Random, traffic: Traffic, tenant: _Tenant, intent: str, started: datetime, pii_share: float
    ) -> None:
        self.rng, self.traffic, self.tenant, self.intent = rng, traffic, tenant, intent
        self.id, self.at, self.started, self.pii_share = new_id("c"), started, started, pii_share
        self.channel = rng.choices([c for c, _ in CHANNELS], [w for _, w in CHANNELS])[0]
        self.handed_off = False

    def event(self, kind: str, payload: dict) -> None:
        event_id = uuid.UUID(int=self.rng.getrandbits(128))
        self.traffic.events.append((event_id, self.tenant.id, kind, json.dumps(payload), self.at))

    def play(self, questions_of_intent: list[str]) -> None:
        rng = self.rng
        self.event("conversation.started", started_event(conversation_id=self.id, channel=self.channel, at=self._iso()))
        questions = [rng.choice(questions_of_intent)]
        if rng.random() < 0.35:
            questions.append(rng.choice(FOLLOW_UPS))
        if rng.random() < 0.04:
            questions.append(ASK_FOR_PERSON)
        for turn, question in enumerate(questions):
            self.at += timedelta(seconds=rng.uniform(2, 40) if turn else rng.uniform(0.2, 2))
            self.customer(self._with_pii(question))
            if question == ASK_FOR_PERSON:
                self.hand_off(CUSTOMER_ASKED)
                break
            if turn and turn == len(questions) - 1 and rng.random() < 0.1:
                break  # left before the answer came
            self.reply()
        self.traffic.conversations.append(
            (self.id, self.tenant.id, self.channel, self.started, self.at, self.handed_off)
        )

    def _iso(self) -> str:
        return self.at.isoformat()

    def _with_pii(self, question: str) -> str:
        if self.rng.random() >= self.pii_share:
            return question
        names = {"first": self.rng.choice(NAMES), "last": self.rng.choice(NAMES), "n": self.rng.randrange(1000)}
        return f"{question} {self.rng.choice(PII).format(**names)}"

    def _message(self, role: str, text: str, *, sources=(), tier=None, model=None, latency=None, reason=None) -> str:
        message_id = new_id("m")
        cited = json.dumps([{"document_id": s, "title": s, "chunk_id": s, "score": 1.0} for s in sources])
        self.traffic.messages.append(
            (message_id, self.tenant.id, self.id, role, text, cited, tier, model, latency, self.at)
        )
        payload = message_event(
            conversation_id=self.id,
            message_id=message_id,
            role=role,
            text=text,
            sources=list(sources),
            tier=tier,
            model=model,
            latency_ms=latency,
            handoff_reason=reason,
        )
        self.event("message.created", payload | {"channel": self.channel, "at": self._iso()})
        return message_id

    def customer(self, text: str) -> None:
        self._message("user", text)

    def hand_off(self, reason: str) -> None:
        if not self.handed_off:
            self.handed_off = True
            self.event("handoff.requested", handoff_event(conversation_id=self.id, reason=reason, at=self._iso()))

    def reply(self) -> None:
        rng = self.rng
        roll = rng.random()
        tier = "cache" if roll < 0.12 else "kb" if roll < 0.67 else "llm"
        confident = rng.random() < (0.98 if tier == "cache" else self.tenant.kb_quality)
        model, input_tokens, output_tokens, cost = None, 0, 0, 0.0
        if tier == "llm":
            model, _, in_price, out_price = rng.choices(MODELS, [m[1] for m in MODELS])[0]
            input_tokens, output_tokens = rng.randint(300, 900), rng.randint(25, 140)
            cost = round((input_tokens * in_price + output_tokens * out_price) / 1_000_000, 8)
        latency = round(
            {"cache": rng.uniform(4, 15), "kb": rng.uniform(15, 80), "llm": rng.uniform(350, 2600)}[tier], 2
        )
        self.at += timedelta(milliseconds=latency)
        message_id = self._message(
            "assistant",
            _answer(self.intent) if confident else NOT_FOUND,
            sources=[f"doc_{self.intent}"] if confident else [],
            tier=tier,
            model=model,
            latency=latency,
            reason=None if confident else NO_CONFIDENT_ANSWER,
        )
        usage = UsageRecord(
            tier=tier,
            outcome="ok",
            provider=model.split("/")[0] if model else None,
            model=model.split("/")[1] if model else None,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost,
            latency_ms=latency,
            cache_hit=tier == "cache",
            conversation_id=self.id,
            message_id=message_id,
        )
        self.traffic.usage.append((self.tenant.id, self.at, usage))
        self.event("usage.recorded", asdict(usage) | {"at": self._iso()})
        if not confident:
            self.hand_off(NO_CONFIDENT_ANSWER)
        if rng.random() < 0.25:
            self.rate(message_id, liked=rng.random() < (0.85 if confident else 0.2))

    def rate(self, message_id: str, *, liked: bool) -> None:
        self.at += timedelta(seconds=self.rng.uniform(1, 30))
        rating = "up" if liked else "down"
        comment = None if liked or self.rng.random() < 0.5 else "not what I asked"
        self.traffic.feedback.append((message_id, self.tenant.id, rating, comment, self.at))
        self.event(
            "feedback.given",
            feedback_event(
                conversation_id=self.id, message_id=message_id, rating=rating, comment=comment, at=self._iso()
            ),
        )


async def write(conn: AsyncConnection, traffic: Traffic) -> dict[str, int]:
    """Insert the traffic's rows and outbox events (call inside a transaction: all of it lands, or none)."""
    copies = (
        ("conversations (id, tenant_id, channel, created_at, updated_at, handoff_requested)", traffic.conversations),
        (
            "messages (id, tenant_id, conversation_id, role, text, sources, tier, model, latency_ms, created_at)",
            traffic.messages,
        ),
        ("message_feedback (message_id, tenant_id, rating, comment, created_at)", traffic.feedback),
        ("outbox (event_id, tenant_id, type, payload, created_at)", traffic.events),
    )
    async with conn.cursor() as cursor:
        for target, rows in copies:
            async with cursor.copy(f"COPY {target} FROM STDIN") as copy:
                for row in rows:
                    await copy.write_row(row)
        async with cursor.copy(
            """COPY usage (tenant_id, at, conversation_id, message_id, tier, provider, model, input_tokens,
                           output_tokens, cost_usd, latency_ms, cache_hit, outcome) FROM STDIN"""
        ) as copy:
            for tenant_id, at, u in traffic.usage:
                await copy.write_row(
                    (
                        tenant_id,
                        at,
                        u.conversation_id,
                        u.message_id,
                        u.tier,
                        u.provider,
                        u.model,
                        u.input_tokens,
                        u.output_tokens,
                        u.cost_usd,
                        u.latency_ms,
                        u.cache_hit,
                        u.outcome,
                    )
                )
        # The running monthly totals that budgets read.
        await cursor.execute(
            """INSERT INTO usage_monthly AS total (tenant_id, month, cost_usd)
               SELECT tenant_id, date_trunc('month', at AT TIME ZONE 'UTC')::date, sum(cost_usd)
                 FROM unnest(%s::text[], %s::timestamptz[], %s::numeric[]) AS u(tenant_id, at, cost_usd)
                WHERE cost_usd > 0 GROUP BY 1, 2
               ON CONFLICT (tenant_id, month) DO UPDATE SET cost_usd = total.cost_usd + excluded.cost_usd""",
            (
                [t for t, _, _ in traffic.usage],
                [a for _, a, _ in traffic.usage],
                [u.cost_usd for _, _, u in traffic.usage],
            ),
        )
    added = 0
    for tenant_id, examples in traffic.examples.items():
        added += await intents.add_examples(conn, tenant_id=tenant_id, examples=examples, actor="demo")
    # Each example added is an outbox event too (a text labelled twice is kept once).
    return traffic.counts() | {"examples": added, "events": len(traffic.events) + added}
