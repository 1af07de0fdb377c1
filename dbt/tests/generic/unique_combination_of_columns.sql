{#
    Compound uniqueness: no two rows share the values of `combination_of_columns` (a list of column names).
    Fails with one row per duplicated combination and how often it occurs. Nulls compare equal here; test the
    columns with not_null as well.
#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

select
    {{ combination_of_columns | join(', ') }},
    count(*) as occurrences
from {{ model }}
group by {{ combination_of_columns | join(', ') }}
having count(*) > 1

{% endtest %}
