"""Request, response and event contracts shared by the HTTP tiers and the CLI ("models" means ML only)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    AGENT = "agent"
    ANALYST = "analyst"
    VIEWER = "viewer"


class TenantStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class Request(BaseModel):
    # An unknown field is a typo the caller wants to hear about, not something to drop silently.
    model_config = ConfigDict(extra="forbid")


class TenantCreate(Request):
    name: Name
    settings: dict[str, Any] = Field(default_factory=dict)


class TenantUpdate(Request):
    name: Name | None = None
    status: TenantStatus | None = None
    settings: dict[str, Any] | None = None


class Tenant(BaseModel):
    id: str
    name: str
    status: TenantStatus
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class TenantCreated(Tenant):
    api_key: str = Field(description="The owner key. Shown once: only its hash is stored.")
    api_key_id: str


class ApiKeyCreate(Request):
    role: Role
    name: Name = "default"


class ApiKey(BaseModel):
    id: str
    tenant_id: str
    name: str
    role: Role
    prefix: str
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(BaseModel):
    id: str
    key: str = Field(description="Shown once: only its hash is stored.")
    role: Role
    name: str
    tenant_id: str


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    tenant_id: str | None
    target: str | None
    details: dict[str, Any]
    request_id: str | None


# --- knowledge base -------------------------------------------------------------------------------------------------

MAX_QUERY_CHARS = 2000


class DocumentCreate(Request):
    title: Name
    text: Annotated[str, StringConstraints(min_length=1)]
    source_url: Annotated[str, StringConstraints(max_length=2000)] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class DocumentSummary(BaseModel):
    id: str
    title: str
    media_type: str
    filename: str | None
    source_url: str | None
    metadata: dict[str, Any]
    chunk_count: int
    created_at: datetime


class DocumentChunk(BaseModel):
    id: str
    ordinal: int
    heading: str | None
    text: str


class Document(DocumentSummary):
    text: str
    chunks: list[DocumentChunk]


class UploadedDocument(BaseModel):
    id: str
    title: str
    chunks: int
    created: bool = Field(description="False when the same content was already there (nothing was added)")


class UploadResult(BaseModel):
    """One upload can hold several documents (a CSV of questions and answers); `id` and `chunks` describe the first."""

    id: str
    chunks: int
    documents: list[UploadedDocument]


class SearchRequest(Request):
    query: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUERY_CHARS)]
    top_k: Annotated[int, Field(ge=1, le=50)] = 5


class SearchHit(BaseModel):
    document_id: str
    chunk_id: str
    title: str
    heading: str | None = None
    text: str
    score: float = Field(description="Reciprocal-rank fusion score: orders the hits of one query")
    relevance: float = Field(description="Cosine similarity of query and chunk: comparable across queries")
    source_url: str | None = None


class SearchResult(BaseModel):
    hits: list[SearchHit]


# --- conversations ----------------------------------------------------------------------------------------------------


class Channel(StrEnum):
    API = "api"
    WIDGET = "widget"
    OPENAI = "openai"


class ConversationCreate(Request):
    metadata: dict[str, Any] = Field(default_factory=dict)


class Conversation(BaseModel):
    id: str
    channel: Channel
    handoff_requested: bool
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class ConversationCreated(Conversation):
    visitor_token: str | None = Field(None, description="Widget conversations only: proves the visitor owns it")


class Source(BaseModel):
    document_id: str
    chunk_id: str
    title: str
    source_url: str | None = None
    score: float


class Message(BaseModel):
    id: str
    conversation_id: str
    role: str
    text: str
    sources: list[Source]
    tier: str | None
    model: str | None = None  # provider/model that wrote an answer; None for the free tiers
    latency_ms: float | None
    intent: str | None = None  # a customer message's intent, by the tenant's champion intent model
    intent_confidence: float | None = None
    created_at: datetime


class ConversationWithMessages(Conversation):
    messages: list[Message]


class MessageCreate(Request):
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class Reply(BaseModel):
    message_id: str
    text: str
    sources: list[Source]
    tier: str  # cache, kb, local or llm
    model: str | None = None  # provider/model for the llm tier (and an llm answer served from the cache)
    handoff_offered: bool
    intent: str | None = Field(None, description="The question's intent, when the tenant has an intent model")
    out_of_scope: bool = Field(False, description="The intent model found the question outside what it knows")


class ChatTurn(BaseModel):
    message_id: str
    reply: Reply
    latency_ms: float


class Rating(StrEnum):
    UP = "up"
    DOWN = "down"


class FeedbackCreate(Request):
    rating: Rating
    comment: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = None


class Feedback(BaseModel):
    message_id: str
    rating: Rating
    comment: str | None
    updated_at: datetime


# --- widget keys ------------------------------------------------------------------------------------------------------


class WidgetKeyCreate(Request):
    name: Name = "widget"
    allowed_origins: Annotated[
        list[Annotated[str, StringConstraints(max_length=300)]], Field(min_length=1, max_length=50)
    ]


class WidgetKey(BaseModel):
    id: str
    tenant_id: str
    key: str
    name: str
    allowed_origins: list[str]
    created_by: str
    created_at: datetime
    revoked_at: datetime | None


class UsageRow(BaseModel):
    key: str = Field(description="The day (YYYY-MM-DD, UTC), the provider/model (or tier), or the tier")
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    cache_hits: int
    errors: int


class UsageReport(BaseModel):
    start: datetime
    end: datetime
    group_by: Literal["day", "model", "tier"]
    store: str = Field(description="Where usage is kept: timescaledb or postgresql")
    rows: list[UsageRow]
    total_cost_usd: float
    total_calls: int = 0
    cache_hit_rate: float = Field(0.0, description="Answers served from the semantic cache, over all answers")


class IntentRouteOut(BaseModel):
    intent: str
    tier: str = Field(description="kb, local or provider/model: the cheapest tier whose measured quality holds")
    samples: int = Field(description="Answers the measurement rests on")
    explore_share: float = Field(description="Share of conversations that keep the plain policy")
    quality: float | None
    baseline_tier: str | None = Field(None, description="The tier with the best measured quality for the intent")
    baseline_quality: float | None = None
    baseline_cost_usd: float | None = Field(None, description="Mean cost of an answer on the baseline tier")
    route_cost_usd: float | None = Field(None, description="Mean cost of an answer on the route's tier")
    answers_per_day: float | None = Field(None, description="The intent's answers a day when the route was computed")
    computed_at: datetime
    in_policy: bool = Field(description="Whether the policy lists the tier; a route to a tier it does not is ignored")


IntentName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class IntentExample(Request):
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
    intent: IntentName


class IntentExamplesCreate(Request):
    examples: Annotated[list[IntentExample], Field(min_length=1, max_length=10_000)]


class IntentExamples(BaseModel):
    intents: dict[str, int] = Field(description="Examples per intent, all of the tenant's")
    total: int
    trainable: bool
    why_not: str | None = Field(None, description="What is missing before a model can be trained")


class IntentExamplesAdded(IntentExamples):
    added: int
    duplicates: int = Field(description="Examples already stored (same text and intent): kept once")


class TrainingJob(BaseModel):
    id: str
    kind: Literal["intent", "sentiment"]
    status: Literal["queued", "running", "succeeded", "failed"]
    requested_by: str
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    run_id: str | None = Field(description="The MLflow run, once training started")
    model_uri: str | None
    metrics: dict[str, float] | None
    promoted: bool | None = Field(description="Whether the new model became the champion")
    detail: str | None
    examples: int = Field(
        0, description="The tenant's labelled examples when the job was queued: it starts once the lake holds them"
    )
