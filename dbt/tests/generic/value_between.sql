{#
    Every non-null value of the column lies in [min_value, max_value] (a rate in [0, 1], a score in [-1, 1]...).
#}
{% test value_between(model, column_name, min_value, max_value) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} is not null
  and ({{ column_name }} < {{ min_value }} or {{ column_name }} > {{ max_value }})

{% endtest %}
