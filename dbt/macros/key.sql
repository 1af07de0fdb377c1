{#
    A single-column key from the columns that identify a row within the lake (tenant_id first): ids are unique
    per tenant, so every key carries the tenant, and a join on it can never pair two tenants' rows.
#}
{% macro key(columns) -%}
    concat_ws('/', {{ columns | join(', ') }})
{%- endmacro %}
