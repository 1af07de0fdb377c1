{#
    numerator / denominator as a double, null when the denominator is 0 or null (as the lake's gold rates are:
    "no closed conversation yet" is not a deflection rate of 0).
#}
{% macro ratio(numerator, denominator) -%}
    case when ({{ denominator }}) > 0 then cast({{ numerator }} as double) / ({{ denominator }}) end
{%- endmacro %}
