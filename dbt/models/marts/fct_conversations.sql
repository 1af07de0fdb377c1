with conversations as (
    select * from {{ ref('stg_conversations') }}
),

topics as (
    select * from {{ ref('stg_conversation_topics') }}
),

sentiment as (
    select
        messages.tenant_id,
        messages.conversation_id,
        count(*) as scored_messages,
        count(*) filter (where sentiment.sentiment_label = 'negative') as negative_messages,
        avg(sentiment.sentiment_score) as sentiment_mean
    from {{ ref('stg_messages') }} as messages
    inner join {{ ref('stg_message_sentiment') }} as sentiment
        on messages.tenant_id = sentiment.tenant_id
        and messages.message_id = sentiment.message_id
    group by messages.tenant_id, messages.conversation_id
)

select
    conversations.conversation_key,
    conversations.tenant_id,
    conversations.conversation_id,
    conversations.channel,
    conversations.started_at,
    conversations.ended_at,
    conversations.conversation_date,
    epoch(conversations.ended_at) - epoch(conversations.started_at) as duration_seconds,
    conversations.messages,
    conversations.user_messages,
    conversations.assistant_messages,
    conversations.unanswered,
    conversations.outcome,
    conversations.outcome = 'resolved' as is_resolved,
    conversations.is_handoff,
    conversations.outcome in ('resolved', 'handoff', 'abandoned') as is_closed,
    conversations.handoff_reason,
    conversations.handoff_at,
    conversations.feedback_up,
    conversations.feedback_down,
    conversations.input_tokens,
    conversations.output_tokens,
    conversations.cost_usd,
    conversations.latency_ms_mean,
    conversations.latency_ms_max,
    conversations.tiers,
    topics.topic_id,
    topics.topic,
    coalesce(sentiment.scored_messages, 0) as scored_messages,
    coalesce(sentiment.negative_messages, 0) as negative_messages,
    sentiment.sentiment_mean
from conversations
left join topics
    on conversations.tenant_id = topics.tenant_id
    and conversations.conversation_id = topics.conversation_id
left join sentiment
    on conversations.tenant_id = sentiment.tenant_id
    and conversations.conversation_id = sentiment.conversation_id
