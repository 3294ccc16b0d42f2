-- Every value a HubSpot contact property was seen to take, one row per observation, from
-- the append-only change log: property changes as logged, and each poll's first sight of a
-- contact (a record row holding every tracked property as JSON) as one row per property.
-- Creation events carry no property and are left out.
with changes as (
    select * from {{ source('raw', 'crm_contact_changes') }}
),

property_changes as (
    select
        object_id,
        email,
        property,
        value,
        changed_at,
        change_source,
        is_echo,
        feed,
        change_type,
        dedupe_key,
        loaded_at
    from changes
    where change_type = 'property'
),

record_properties as (
    select
        changes.object_id,
        changes.email,
        fields.property,
        {{ json_text('changes.value', 'fields.property') }} as value,
        changes.changed_at,
        changes.change_source,
        changes.is_echo,
        changes.feed,
        changes.change_type,
        changes.dedupe_key,
        changes.loaded_at
    from changes
    cross join lateral {{ json_object_keys('changes.value') }} as fields (property)
    where changes.change_type = 'record'
)

select * from property_changes
union all
select * from record_properties
