select
    tenant_id,
    name as tenant_name,
    status as tenant_status,
    demo as is_demo,
    created_at,
    updated_at
from {{ source('lake', 'silver_tenants') }}
