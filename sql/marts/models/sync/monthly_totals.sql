-- Totals per company, month and document kind, source app vs QBO: what the source holds (all,
-- and synced), what QBO holds (all, and what came from the source). Sales with a negative total
-- are credit memos in QBO (R11), counted negative here.
with source_docs as (
    select realm_id, 'invoices' as entity, source_id, raw_qbo.try_date(data ->> 'txn_date') as day,
           {{ num("data ->> 'total'") }} as amount
    from {{ source('raw_source', 'invoices') }} where not deleted
    union all
    select realm_id, 'payments', source_id, raw_qbo.try_date(data ->> 'received_on'),
           {{ num("data ->> 'amount'") }}
    from {{ source('raw_source', 'payments') }} where not deleted
    union all
    select realm_id, 'bills', source_id, raw_qbo.try_date(data ->> 'txn_date'),
           {{ num("data ->> 'total'") }}
    from {{ source('raw_source', 'bills') }} where not deleted
),

qbo_docs as (
    select realm_id, 'invoices' as entity, 'Invoice' as qbo_entity, qbo_id, txn_date as day,
           total_amt as amount
    from {{ source('raw_qbo', 'invoices') }} where not deleted
    union all
    select realm_id, 'invoices', 'CreditMemo', qbo_id, txn_date, -total_amt
    from {{ source('raw_qbo', 'credit_memos') }} where not deleted
    union all
    select realm_id, 'payments', 'Payment', qbo_id, txn_date, total_amt
    from {{ source('raw_qbo', 'payments') }} where not deleted
    union all
    select realm_id, 'bills', 'Bill', qbo_id, txn_date, total_amt
    from {{ source('raw_qbo', 'bills') }} where not deleted
),

source_side as (
    select d.realm_id, d.entity, date_trunc('month', d.day)::date as month,
           count(*) as source_records,
           sum(d.amount) as source_total,
           coalesce(sum(d.amount) filter (where s.status = 'synced'), 0) as source_synced_total
    from source_docs as d
    left join {{ source('sync', 'record_state') }} as s
           on s.realm_id = d.realm_id and s.entity = d.entity and s.source_id = d.source_id
    where d.day is not null
    group by 1, 2, 3
),

qbo_side as (
    select d.realm_id, d.entity, date_trunc('month', d.day)::date as month,
           count(*) as qbo_records,
           sum(d.amount) as qbo_total,
           coalesce(sum(d.amount) filter (where s.created_by in ('sync', 'matched')), 0)
               as qbo_from_source_total
    from qbo_docs as d
    left join {{ source('sync', 'record_state') }} as s
           on s.realm_id = d.realm_id and s.qbo_entity = d.qbo_entity and s.qbo_id = d.qbo_id
    where d.day is not null
    group by 1, 2, 3
)

select
    coalesce(s.realm_id, q.realm_id) as realm_id,
    coalesce(s.month, q.month) as month,
    coalesce(s.entity, q.entity) as entity,
    coalesce(s.source_records, 0)::integer as source_records,
    coalesce(s.source_total, 0) as source_total,
    coalesce(s.source_synced_total, 0) as source_synced_total,
    coalesce(q.qbo_records, 0)::integer as qbo_records,
    coalesce(q.qbo_total, 0) as qbo_total,
    coalesce(q.qbo_from_source_total, 0) as qbo_from_source_total,
    coalesce(s.source_total, 0) - coalesce(q.qbo_total, 0) as difference
from source_side as s
full join qbo_side as q using (realm_id, entity, month)
