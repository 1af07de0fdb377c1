with tenants as (
    select * from {{ ref('dim_tenants') }}
),

conversations as (
    select
        tenant_id,
        count(*) as conversations,
        count(*) filter (where outcome = 'resolved') as resolved,
        count(*) filter (where outcome = 'handoff') as handoff,
        count(*) filter (where outcome = 'abandoned') as abandoned,
        count(*) filter (where outcome = 'open') as open_conversations,
        cast(sum(feedback_up) as bigint) as feedback_up,
        cast(sum(feedback_down) as bigint) as feedback_down,
        cast(sum(input_tokens) as bigint) as input_tokens,
        cast(sum(output_tokens) as bigint) as output_tokens,
        sum(cost_usd) as cost_usd,
        min(conversation_date) as first_conversation_date,
        max(conversation_date) as last_conversation_date,
        count(distinct conversation_date) as active_days
    from {{ ref('fct_conversations') }}
    group by tenant_id
),

messages as (
    select
        tenant_id,
        count(*) as messages,
        count(*) filter (where "role" = 'user') as user_messages,
        count(*) filter (where "role" = 'assistant') as assistant_messages,
        count(*) filter (where answered = false) as unanswered,
        count(sentiment_label) as scored_messages,
        count(*) filter (where sentiment_label = 'negative') as negative_messages,
        avg(sentiment_score) as sentiment_mean,
        min(message_date) as first_message_date,
        max(message_date) as last_message_date
    from {{ ref('fct_messages') }}
    group by tenant_id
),

totals as (
    select
        tenants.tenant_id,
        tenants.tenant_name,
        tenants.tenant_status,
        coalesce(conversations.conversations, 0) as conversations,
        coalesce(conversations.resolved, 0) as resolved,
        coalesce(conversations.handoff, 0) as handoff,
        coalesce(conversations.abandoned, 0) as abandoned,
        coalesce(conversations.open_conversations, 0) as open_conversations,
        coalesce(messages.messages, 0) as messages,
        coalesce(messages.user_messages, 0) as user_messages,
        coalesce(messages.assistant_messages, 0) as assistant_messages,
        coalesce(messages.unanswered, 0) as unanswered,
        coalesce(conversations.feedback_up, 0) as feedback_up,
        coalesce(conversations.feedback_down, 0) as feedback_down,
        coalesce(messages.scored_messages, 0) as scored_messages,
        coalesce(messages.negative_messages, 0) as negative_messages,
        messages.sentiment_mean,
        coalesce(conversations.input_tokens, 0) as input_tokens,
        coalesce(conversations.output_tokens, 0) as output_tokens,
        coalesce(conversations.cost_usd, 0) as cost_usd,
        least(conversations.first_conversation_date, messages.first_message_date) as first_day,
        greatest(conversations.last_conversation_date, messages.last_message_date) as last_day,
        coalesce(conversations.active_days, 0) as active_days
    from tenants
    left join conversations on tenants.tenant_id = conversations.tenant_id
    left join messages on tenants.tenant_id = messages.tenant_id
)

select
    tenant_id,
    tenant_name,
    tenant_status,
    conversations,
    resolved,
    handoff,
    abandoned,
    open_conversations,
    {{ ratio('resolved', 'resolved + handoff + abandoned') }} as deflection_rate,
    messages,
    user_messages,
    assistant_messages,
    unanswered,
    feedback_up,
    feedback_down,
    {{ ratio('feedback_up', 'feedback_up + feedback_down') }} as satisfaction,
    scored_messages,
    negative_messages,
    {{ ratio('negative_messages', 'scored_messages') }} as negative_sentiment_share,
    sentiment_mean,
    input_tokens,
    output_tokens,
    cost_usd,
    {{ ratio('cost_usd', 'conversations') }} as cost_per_conversation_usd,
    first_day,
    last_day,
    active_days
from totals
