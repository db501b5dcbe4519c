-- Every sync attempt (sync.ledger, append-only), with the Dagster run that made it (R37) and
-- the record's document number and name, so one record's history is a filter away.
select
    x.id as ledger_id,
    x.realm_id,
    x.entity,
    x.source_id,
    x.qbo_id,
    s.record_key,
    s.doc_number,
    s.name,
    x.direction,
    x.operation,
    x.outcome,
    x.error_code,
    x.error_message,
    x.run_id,
    x.request_id,
    x.details,
    x.at
from {{ source('sync', 'ledger') }} as x
left join lateral (
    select st.record_key, st.doc_number, st.name
    from {{ ref('sync_status') }} as st
    where st.realm_id = x.realm_id and st.entity = x.entity
      and ((x.source_id is not null and st.source_id = x.source_id)
           or (x.source_id is null and st.qbo_id = x.qbo_id))
    limit 1
) as s on true
