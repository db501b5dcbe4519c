-- QBO Bills per company, with the source worker invoice the sync linked (if any).
select
    b.realm_id,
    b.qbo_id,
    s.source_id,
    s.created_by,
    b.doc_number,
    b.ref_id as vendor_qbo_id,
    b.ref_name as vendor_name,
    b.txn_date,
    b.due_date,
    b.total_amt,
    b.balance,
    {{ ref_id("b.data -> 'APAccountRef'") }} as ap_account_qbo_id,
    b.data ->> 'PrivateNote' as private_note,
    b.updated_time,
    b.deleted,
    {{ qbo_url("'Bill'", 'b.qbo_id') }} as qbo_url
from {{ source('raw_qbo', 'bills') }} as b
{{ sync_link('b', 'Bill') }}
