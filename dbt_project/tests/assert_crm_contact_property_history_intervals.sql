-- Versions of one contact property never overlap: each ends after it starts, and at most
-- one is current. Rows returned are violations.
with history as (
    select * from {{ ref('crm_contact_property_history') }}
)

select object_id, property, valid_from, valid_to, 'ends before it starts' as problem
from history
where valid_to <= valid_from
union all
select object_id, property, max(valid_from), null, 'more than one current value' as problem
from history
where is_current
group by object_id, property
having count(*) > 1
