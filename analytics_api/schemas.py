"""What the analytics endpoints answer (the dashboard page and any BI tool read the same documents)."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field


class Sentiment(BaseModel):
    negative: int
    neutral: int
    positive: int
    negative_share: float | None
    mean: float | None = Field(description="Mean compound score of the customers' messages, -1 to 1")


class Kpis(BaseModel):
    conversations: int
    resolved: int
    handoff: int
    abandoned: int
    open: int
    messages: int
    deflection_rate: float | None = Field(description="Resolved share of the closed conversations")
    unanswered: int = Field(description="Customer questions without a confident answer")
    feedback_up: int
    feedback_down: int
    satisfaction: float | None = Field(description="Thumbs up share of the rated answers")
    sentiment: Sentiment
    cost_usd: float
    cost_per_conversation_usd: float | None
    latency_ms_p95: float | None = Field(description="The slowest day's P95 answer latency")


class Range(BaseModel):
    tenant_id: str
    start: date = Field(serialization_alias="from")
    end: date = Field(serialization_alias="to")
    days: int


class Overview(Range):
    tenant_name: str
    store: str = Field(description="timescaledb or postgresql: which metrics store answered")
    kpis: Kpis
    previous: Kpis = Field(description="The same figures over the range of the same length just before")


class Point(BaseModel):
    start: date = Field(description="First day of the bucket")
    value: float | None


class Timeseries(Range):
    metric: str
    interval: str
    points: list[Point]


class IntentFigures(BaseModel):
    intent: str
    conversations: int
    resolved: int
    handoff: int
    deflection_rate: float | None
    unanswered: int
    satisfaction: float | None
    negative_share: float | None
    cost_usd: float


class Intents(Range):
    intents: list[IntentFigures]


class UnansweredQuestion(BaseModel):
    question: str = Field(description="Normalised: lower case, single spaces")
    example: str = Field(description="One of the questions as a customer wrote it (PII redacted)")
    asked: int
    last_asked: date


class Unanswered(Range):
    questions: list[UnansweredQuestion]


class BaselineCost(BaseModel):
    model: str | None = Field(description="The catalog's most expensive model, provider/model")
    cost_usd: float | None = Field(description="What the range's answers would have cost on it")
    cost_per_conversation_usd: float | None
    tokens_per_free_answer: str = Field(
        description="measured (the tenant's mean per model answer) or assumed (no model answers in the range)"
    )


class RoutingSavings(BaseModel):
    routes: int = Field(description="Per-intent routes the pipelines learned")
    projected_saving_usd_per_day: float | None
    realised_saving_usd: float | None = Field(description="Over the range, against the same intents' exploration")
    routed_answers: int


class DayCost(BaseModel):
    day: date
    cost_usd: float
    baseline_cost_usd: float | None


class Answers(BaseModel):
    cache: int
    kb: int
    local: int
    llm: int


class Costs(Range):
    cost_usd: float
    conversations: int
    cost_per_conversation_usd: float | None
    answers: Answers
    baseline: BaselineCost
    saved_usd: float | None = Field(description="Baseline cost less the real cost")
    saved_share: float | None
    routing: RoutingSavings
    daily: list[DayCost]


class TenantFigures(BaseModel):
    tenant_id: str
    name: str | None
    conversations: int
    messages: int
    deflection_rate: float | None
    satisfaction: float | None
    unanswered: int
    cost_usd: float
    cost_per_conversation_usd: float | None


class Platform(BaseModel):
    start: date = Field(serialization_alias="from")
    end: date = Field(serialization_alias="to")
    days: int
    store: str
    tenants: list[TenantFigures]
