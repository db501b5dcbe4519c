-- One row per record the sync knows, per company: every record with a state row (synced,
-- pending, held, failed, skipped, deleted) and every record held back before it ever got one,
-- with its document number and name on either side, its open problems and its latest attempt.
with state as (
    select realm_id, entity, source_id, qbo_entity, qbo_id, created_by, status,
           deleted_in_source, deleted_in_qbo, attempt, error_code, error_message, fix,
           retry_at, last_synced_at, updated_at, last_run_id
    from {{ source('sync', 'record_state') }}
),

held_only as (
    select q.realm_id, q.entity, q.source_id, null::text as qbo_entity, null::text as qbo_id,
           'sync'::text as created_by, 'held'::text as status, false as deleted_in_source,
           false as deleted_in_qbo, 0 as attempt, null::text as error_code,
           null::text as error_message, null::text as fix, null::timestamptz as retry_at,
           null::timestamptz as last_synced_at, max(q.last_seen) as updated_at,
           max(q.last_run_id) as last_run_id
    from {{ source('sync', 'quarantine') }} as q
    where q.resolved_at is null
      and not exists (select 1 from state as s where s.realm_id = q.realm_id
                      and s.entity = q.entity and s.source_id = q.source_id)
    group by q.realm_id, q.entity, q.source_id
),

records as (
    select * from state
    union all
    select * from held_only
),

held as (
    select realm_id, entity, source_id,
           string_agg(rule, '; ' order by rule) as held_rules,
           string_agg(reason, '; ' order by rule) as held_reasons
    from {{ source('sync', 'quarantine') }}
    where resolved_at is null
    group by 1, 2, 3
),

-- what the source app calls the record (document number, name), from the push's raw read
-- of that company (raw_source is keyed by realm_id, source_id)
source_side as (
    select c.realm_id, 'customers' as entity, c.source_id, null::text as doc_number,
           coalesce(c.data ->> 'display_name', c.data ->> 'company_name',
                    concat_ws(' ', c.data ->> 'given_name', c.data ->> 'family_name')) as name
    from {{ source('raw_source', 'customers') }} as c
    union all
    select v.realm_id, 'vendors', v.source_id, null, v.data ->> 'display_name'
    from {{ source('raw_source', 'vendors') }} as v
    union all
    select i.realm_id, 'items', i.source_id, null, i.data ->> 'name'
    from {{ source('raw_source', 'items') }} as i
    union all
    select s.realm_id, 'invoices', s.source_id, s.data ->> 'doc_number', c.data ->> 'display_name'
    from {{ source('raw_source', 'invoices') }} as s
    left join {{ source('raw_source', 'customers') }} as c
           on c.realm_id = s.realm_id and c.source_id = s.data ->> 'customer_source_id'
    union all
    select p.realm_id, 'payments', p.source_id, p.data ->> 'reference', c.data ->> 'display_name'
    from {{ source('raw_source', 'payments') }} as p
    left join {{ source('raw_source', 'customers') }} as c
           on c.realm_id = p.realm_id and c.source_id = p.data ->> 'customer_source_id'
    union all
    select b.realm_id, 'bills', b.source_id, b.data ->> 'doc_number', v.data ->> 'display_name'
    from {{ source('raw_source', 'bills') }} as b
    left join {{ source('raw_source', 'vendors') }} as v
           on v.realm_id = b.realm_id and v.source_id = b.data ->> 'vendor_source_id'
),

-- what QBO calls it
qbo_side as (
    {%- for entity, table in [('Customer', 'customers'), ('Vendor', 'vendors'), ('Item', 'items'),
                              ('Invoice', 'invoices'), ('CreditMemo', 'credit_memos'),
                              ('Payment', 'payments'), ('Bill', 'bills')] %}
    {% if not loop.first %}union all{% endif %}
    select realm_id, '{{ entity }}' as qbo_entity, qbo_id, doc_number,
           coalesce(name, ref_name) as name
    from {{ source('raw_qbo', table) }}
    {%- endfor %}
)

select
    r.realm_id,
    r.entity,
    r.entity || ':' || coalesce(r.source_id, 'qbo-' || r.qbo_id) as record_key,
    r.source_id,
    r.qbo_entity,
    r.qbo_id,
    coalesce(src.doc_number, q.doc_number) as doc_number,
    coalesce(src.name, q.name) as name,
    r.status,
    (h.held_rules is not null or r.status = 'held') as held_back,
    h.held_rules,
    h.held_reasons,
    r.error_code,
    r.error_message,
    r.fix,
    r.retry_at,
    r.created_by,
    r.deleted_in_source,
    r.deleted_in_qbo,
    r.attempt,
    coalesce(r.last_synced_at, r.updated_at) as last_synced_at,
    l.direction as last_direction,
    l.operation as last_operation,
    l.outcome as last_outcome,
    l.at as last_attempt_at,
    coalesce(l.run_id, r.last_run_id) as last_run_id,
    case when r.qbo_id is not null and r.qbo_entity is not null
         then {{ qbo_url('r.qbo_entity', 'r.qbo_id') }} end as qbo_url
from records as r
left join held as h
       on h.realm_id = r.realm_id and h.entity = r.entity and h.source_id = r.source_id
left join source_side as src
       on src.realm_id = r.realm_id and src.entity = r.entity and src.source_id = r.source_id
left join qbo_side as q
       on q.realm_id = r.realm_id and q.qbo_entity = r.qbo_entity and q.qbo_id = r.qbo_id
left join lateral (
    select x.direction, x.operation, x.outcome, x.at, x.run_id
    from {{ source('sync', 'ledger') }} as x
    where x.realm_id = r.realm_id and x.entity = r.entity
      and ((r.source_id is not null and x.source_id = r.source_id)
           or (r.source_id is null and x.qbo_id = r.qbo_id))
    order by x.at desc, x.id desc
    limit 1
) as l on true
