-- The value each HubSpot contact property held over time, built from the append-only change
-- log: one row per contact, property and value, valid from the moment the CRM set it (the
-- CRM's clock, not when the pipeline heard of it, so late webhooks land in their place)
-- until the next value was set; valid_to is null for the value held now. The state of the
-- CRM at a moment T is every row with valid_from <= T and (valid_to is null or valid_to > T).
with observations as (
    select * from {{ ref('stg_crm_contact_property_changes') }}
),

-- In the CRM's order; of observations of one moment, in the order they were logged.
ordered as (
    select
        *,
        lag(value) over property_timeline as previous_value,
        row_number() over property_timeline as position
    from observations
    window property_timeline as (
        partition by object_id, property order by changed_at, loaded_at, dedupe_key
    )
),

-- A value seen again (a poll reading what a webhook already reported, the CRM echoing the
-- pipeline's write of a value it held) changes nothing: its first sighting opens the version
-- and keeps who made the change.
versions as (
    select
        object_id,
        property,
        value,
        changed_at as valid_from,
        lead(changed_at) over (
            partition by object_id, property order by changed_at, loaded_at, dedupe_key
        ) as valid_to,
        change_source,
        is_echo,
        feed
    from ordered
    where position = 1 or value is distinct from previous_value
),

-- The contact's newest known email, to find it by; its email at a moment is the history of
-- the email property itself.
emails as (
    select object_id, email
    from (
        select
            object_id,
            email,
            row_number() over (
                partition by object_id order by changed_at desc, loaded_at desc, dedupe_key desc
            ) as recency
        from observations
        where email is not null
    ) as sightings
    where recency = 1
)

select
    versions.object_id || ':' || versions.property || ':' || {{ epoch_millis('versions.valid_from') }}
        as history_id,
    versions.object_id,
    emails.email,
    versions.property,
    versions.value,
    versions.valid_from,
    versions.valid_to,
    versions.valid_to is null as is_current,
    versions.change_source,
    versions.is_echo,
    versions.feed
from versions
left join emails on emails.object_id = versions.object_id
-- Of two different values set at the same moment, the one logged last holds.
where versions.valid_to is null or versions.valid_to > versions.valid_from
