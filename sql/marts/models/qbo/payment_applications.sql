-- What each QBO payment is applied to: one row per linked transaction of each payment line
-- (an invoice, or a credit memo used in the payment).
select
    l.realm_id,
    l.qbo_id as payment_qbo_id,
    l.line_seq,
    x.ord::integer as link_seq,
    p.ref_id as customer_qbo_id,
    p.txn_date,
    x.link ->> 'TxnType' as linked_txn_type,
    x.link ->> 'TxnId' as linked_txn_qbo_id,
    l.amount,
    l.deleted
from {{ source('raw_qbo', 'payment_lines') }} as l
join {{ source('raw_qbo', 'payments') }} as p using (realm_id, qbo_id)
cross join lateral jsonb_array_elements({{ json_array("l.data -> 'LinkedTxn'") }})
    with ordinality as x (link, ord)
