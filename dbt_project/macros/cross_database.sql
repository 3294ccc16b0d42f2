{#-
  The few expressions DuckDB and PostgreSQL spell differently. Each macro's default is
  DuckDB's spelling; the postgres__ variant is PostgreSQL's (dbt picks it for a postgres
  target). Everything else in the models is SQL both accept.
-#}

{#- Seconds since the epoch of a timestamp, as a double. -#}
{% macro epoch_seconds(timestamp) -%}
    {{ return(adapter.dispatch('epoch_seconds')(timestamp)) }}
{%- endmacro %}

{% macro default__epoch_seconds(timestamp) -%}
    epoch({{ timestamp }})
{%- endmacro %}

{% macro postgres__epoch_seconds(timestamp) -%}
    cast(extract(epoch from {{ timestamp }}) as double precision)
{%- endmacro %}

{#- Whole milliseconds since the epoch of a timestamp, as a bigint. -#}
{% macro epoch_millis(timestamp) -%}
    {{ return(adapter.dispatch('epoch_millis')(timestamp)) }}
{%- endmacro %}

{% macro default__epoch_millis(timestamp) -%}
    epoch_ms({{ timestamp }})
{%- endmacro %}

{% macro postgres__epoch_millis(timestamp) -%}
    cast(floor(extract(epoch from {{ timestamp }}) * 1000) as bigint)
{%- endmacro %}

{#- The interpolated percentile (0 to 1) of an expression over the group. -#}
{% macro percentile(expression, fraction) -%}
    {{ return(adapter.dispatch('percentile')(expression, fraction)) }}
{%- endmacro %}

{% macro default__percentile(expression, fraction) -%}
    quantile_cont({{ expression }}, {{ fraction }})
{%- endmacro %}

{% macro postgres__percentile(expression, fraction) -%}
    percentile_cont({{ fraction }}) within group (order by {{ expression }})
{%- endmacro %}

{#- A timestamp to the minute as text, e.g. 2025-03-04T09:00, for keys. -#}
{% macro minute_label(timestamp) -%}
    {{ return(adapter.dispatch('minute_label')(timestamp)) }}
{%- endmacro %}

{% macro default__minute_label(timestamp) -%}
    strftime({{ timestamp }}, '%Y-%m-%dT%H:%M')
{%- endmacro %}

{% macro postgres__minute_label(timestamp) -%}
    to_char({{ timestamp }}, 'YYYY-MM-DD"T"HH24:MI')
{%- endmacro %}

{#- The text value of a key of a JSON object held in a text column. -#}
{% macro json_text(json_column, key) -%}
    {{ return(adapter.dispatch('json_text')(json_column, key)) }}
{%- endmacro %}

{% macro default__json_text(json_column, key) -%}
    ({{ json_column }} ->> {{ key }})
{%- endmacro %}

{% macro postgres__json_text(json_column, key) -%}
    (cast({{ json_column }} as json) ->> {{ key }})
{%- endmacro %}

{#- A table function: one row per key of a JSON object held in a text column, to join
    laterally (cross join lateral ... as alias (key_column)). -#}
{% macro json_object_keys(json_column) -%}
    {{ return(adapter.dispatch('json_object_keys')(json_column)) }}
{%- endmacro %}

{% macro default__json_object_keys(json_column) -%}
    unnest(json_keys({{ json_column }}))
{%- endmacro %}

{% macro postgres__json_object_keys(json_column) -%}
    json_object_keys(cast({{ json_column }} as json))
{%- endmacro %}
