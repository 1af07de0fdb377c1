select
    tenant_id,
    tenant_name,
    tenant_status,
    is_demo,
    created_at,
    updated_at
from {{ ref('stg_tenants') }}
