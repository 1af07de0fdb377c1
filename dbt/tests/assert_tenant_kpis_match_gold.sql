{#
    The marts, built from silver, agree with the lake's own per-day aggregates in gold/tenant_daily summed over
    each tenant's history. Fails with one row per tenant whose counts differ. (Cost is not compared: gold counts
    the usage of messages only, silver's conversations also the usage of turns that broke off before a message.)
#}
{{ config(meta={'dagster': {'ref': {'name': 'tenant_kpis'}}}) }}

with gold as (
    select
        tenant_id,
        sum(conversations) as conversations,
        sum(resolved) as resolved,
        sum(handoff) as handoff,
        sum(abandoned) as abandoned,
        sum("open") as open_conversations,
        sum(messages) as messages,
        sum(user_messages) as user_messages,
        sum(assistant_messages) as assistant_messages,
        sum(feedback_up) as feedback_up,
        sum(feedback_down) as feedback_down,
        sum(coalesce(sentiment_negative, 0)) as negative_messages
    from {{ ref('stg_tenant_daily') }}
    group by tenant_id
),

kpis as (
    select * from {{ ref('tenant_kpis') }} where conversations > 0 or messages > 0
)

select
    coalesce(kpis.tenant_id, gold.tenant_id) as tenant_id,
    kpis.conversations as kpi_conversations,
    gold.conversations as gold_conversations,
    kpis.messages as kpi_messages,
    gold.messages as gold_messages
from kpis
full outer join gold on kpis.tenant_id = gold.tenant_id
where kpis.tenant_id is null
    or gold.tenant_id is null
    or kpis.conversations != gold.conversations
    or kpis.resolved != gold.resolved
    or kpis.handoff != gold.handoff
    or kpis.abandoned != gold.abandoned
    or kpis.open_conversations != gold.open_conversations
    or kpis.messages != gold.messages
    or kpis.user_messages != gold.user_messages
    or kpis.assistant_messages != gold.assistant_messages
    or kpis.feedback_up != gold.feedback_up
    or kpis.feedback_down != gold.feedback_down
    or kpis.negative_messages != gold.negative_messages
