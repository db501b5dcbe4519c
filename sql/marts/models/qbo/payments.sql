-- QBO Payments (money received) per company, with the source receipt the sync linked (if any).
select
    p.realm_id,
    p.qbo_id,
    s.source_id,
    s.created_by,
    p.ref_id as customer_qbo_id,
    p.ref_name as customer_name,
    p.txn_date,
    p.total_amt,
    coalesce({{ num("p.data ->> 'UnappliedAmt'") }}, 0) as unapplied_amt,
    {{ ref_id("p.data -> 'DepositToAccountRef'") }} as deposit_account_qbo_id,
    {{ ref_id("p.data -> 'PaymentMethodRef'") }} as payment_method_qbo_id,
    p.data ->> 'PaymentRefNum' as reference,
    p.updated_time,
    p.deleted,
    {{ qbo_url("'Payment'", 'p.qbo_id') }} as qbo_url
from {{ source('raw_qbo', 'payments') }} as p
{{ sync_link('p', 'Payment') }}
