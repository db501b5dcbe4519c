-- What needs a person: exactly one row per record (company, entity, record id) with an open
-- problem, whatever its causes: held back by data-quality rules or a missing mapping (every
-- rule it breaks), refused by QBO on its last write, or another open notification. Every row
-- has the reason and the fix. A disconnected company's problems are left out while it is.
with causes as (
    select realm_id, entity, source_id as record_id, 'held' as kind, 1 as priority,
           rule as problem, reason, fix, first_seen, last_seen, last_run_id as run_id
    from {{ source('sync', 'quarantine') }}
    where resolved_at is null
    union all
    select realm_id, entity, coalesce(source_id, qbo_id), 'failed', 2,
           coalesce(error_code, 'failed'),
           coalesce(nullif(error_message, ''), 'QBO refused the last write'),
           coalesce(nullif(fix, ''),
                    'QBO refused the write; the sync retries it automatically. If it keeps '
                    || 'failing, correct the record in the source app as the reason says.'),
           updated_at, updated_at, last_run_id
    from {{ source('sync', 'record_state') }}
    where status = 'failed'
    union all
    select realm_id, entity, record_id, 'notification', 3, title, reason,
           coalesce(nullif(fix, ''), 'See the reason; the notification resolves itself once the cause is gone.'),
           created_at, created_at, null
    from {{ source('sync', 'notifications') }}
    where resolved_at is null
),

-- a notification that repeats another cause's reason of the record (QBO refused its email:
-- the state's error and the notification's reason carry one message) adds no reason of its own
told as (
    select c.*,
           c.kind = 'notification' and exists (
               select 1 from causes as o
               where o.realm_id = c.realm_id and o.entity = c.entity
                 and o.record_id = c.record_id and o.kind <> 'notification'
                 and strpos(c.reason, o.reason) > 0
           ) as repeated
    from causes as c
),

per_record as (
    select realm_id, entity, record_id,
           (array_agg(kind order by priority))[1] as kind,
           string_agg(distinct kind, ', ') as kinds,
           string_agg(distinct problem, '; ') as problem,
           string_agg(distinct reason, '; ') filter (where not repeated) as reason,
           string_agg(distinct fix, ' ') as fix,
           min(first_seen) as first_seen,
           max(last_seen) as last_seen,
           (array_agg(run_id order by last_seen desc nulls last) filter (where run_id is not null))[1]
               as run_id
    from told
    group by realm_id, entity, record_id
)

select
    p.realm_id,
    p.kind,
    p.kinds,
    p.entity,
    p.record_id,
    p.entity || ':' || p.record_id as record_key,
    s.qbo_id,
    s.doc_number,
    s.name,
    p.problem,
    p.reason,
    p.fix,
    p.first_seen,
    p.last_seen,
    p.run_id
from per_record as p
left join {{ source('sync', 'companies') }} as c on c.realm_id = p.realm_id
left join lateral (
    select st.qbo_id, st.doc_number, st.name
    from {{ ref('sync_status') }} as st
    where st.realm_id = p.realm_id and st.entity = p.entity
      and (st.source_id = p.record_id or (st.source_id is null and st.qbo_id = p.record_id))
    limit 1
) as s on true
-- a disconnected company's problems are suspended, not solved: they are back on reconnecting
where c.status is distinct from 'disconnected'
