select
    {{ key(['tenant_id', 'conversation_id']) }} as conversation_key,
    tenant_id,
    conversation_id,
    topic_id,
    topic
from {{ source('lake', 'enriched_conversation_topics') }}
