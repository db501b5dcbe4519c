-- QBO BillPayments (money paid to vendors) per company, with the bills each one pays.
select
    b.realm_id,
    b.qbo_id,
    b.doc_number,
    b.ref_id as vendor_qbo_id,
    b.ref_name as vendor_name,
    b.txn_date,
    b.total_amt,
    b.data ->> 'PayType' as pay_type,
    coalesce({{ ref_id("b.data -> 'CheckPayment' -> 'BankAccountRef'") }},
             {{ ref_id("b.data -> 'CreditCardPayment' -> 'CCAccountRef'") }}) as paid_from_account_qbo_id,
    array(
        select x.link ->> 'TxnId'
        from jsonb_array_elements({{ json_array("b.data -> 'Line'") }}) as ln (line),
             jsonb_array_elements({{ json_array("ln.line -> 'LinkedTxn'") }}) as x (link)
        where x.link ->> 'TxnType' = 'Bill'
    ) as bill_qbo_ids,
    b.updated_time,
    b.deleted,
    {{ qbo_url("'BillPayment'", 'b.qbo_id') }} as qbo_url
from {{ source('raw_qbo', 'bill_payments') }} as b
