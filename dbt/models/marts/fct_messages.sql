with messages as (
    select * from {{ ref('stg_messages') }}
),

sentiment as (
    select * from {{ ref('stg_message_sentiment') }}
)

select
    messages.message_key,
    messages.conversation_key,
    messages.tenant_id,
    messages.conversation_id,
    messages.message_id,
    messages.seq,
    messages."role",
    messages.channel,
    messages.created_at,
    messages.message_date,
    messages.chars,
    messages.pii_redactions,
    len(messages.sources) as source_count,
    messages.tier,
    messages.model,
    messages.latency_ms,
    messages.intent,
    messages.intent_confidence,
    messages.confident,
    messages.answered,
    messages.input_tokens,
    messages.output_tokens,
    messages.cost_usd,
    messages.cache_hit,
    messages.usage_outcome,
    messages.routed_by,
    messages.feedback,
    messages.feedback_at,
    sentiment.sentiment_label,
    sentiment.sentiment_score
from messages
left join sentiment
    on messages.tenant_id = sentiment.tenant_id
    and messages.message_id = sentiment.message_id
