select
    {{ key(['tenant_id', 'message_id']) }} as message_key,
    tenant_id,
    message_id,
    conversation_id,
    label as sentiment_label,
    score as sentiment_score,
    scorer,
    scored_at
from {{ source('lake', 'enriched_message_sentiment') }}
