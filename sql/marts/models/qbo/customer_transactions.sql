-- Every QBO transaction of each customer, with a link that opens it in QBO (R26).
with txns as (
    {%- for entity, table in [('Invoice', 'invoices'), ('Payment', 'payments'),
                              ('SalesReceipt', 'sales_receipts'), ('Estimate', 'estimates'),
                              ('CreditMemo', 'credit_memos'), ('RefundReceipt', 'refund_receipts')] %}
    {% if not loop.first %}union all{% endif %}
    select realm_id, '{{ entity }}' as txn_type, qbo_id, ref_id, doc_number, txn_date, total_amt,
           balance, deleted, updated_time
    from {{ source('raw_qbo', table) }}
    {%- endfor %}
)

select
    t.realm_id,
    t.ref_id as customer_qbo_id,
    c.name as customer_name,
    cs.source_id as customer_source_id,
    t.txn_type,
    t.qbo_id,
    t.doc_number,
    t.txn_date,
    t.total_amt,
    t.balance,
    t.deleted,
    t.updated_time,
    {{ qbo_url('t.txn_type', 't.qbo_id') }} as qbo_url
from txns as t
left join {{ source('raw_qbo', 'customers') }} as c
       on c.realm_id = t.realm_id and c.qbo_id = t.ref_id
left join {{ source('sync', 'record_state') }} as cs
       on cs.realm_id = t.realm_id and cs.qbo_entity = 'Customer' and cs.qbo_id = t.ref_id
