-- QBO Invoices per company, with the source sale the sync linked (if any).
select
    i.realm_id,
    i.qbo_id,
    s.source_id,
    s.created_by,
    i.doc_number,
    i.ref_id as customer_qbo_id,
    i.ref_name as customer_name,
    i.txn_date,
    i.due_date,
    i.total_amt,
    i.balance,
    {{ num("i.data -> 'TxnTaxDetail' ->> 'TotalTax'") }} as tax_total,
    i.data ->> 'EmailStatus' as email_status,
    i.data -> 'BillEmail' ->> 'Address' as bill_email,
    i.data -> 'CurrencyRef' ->> 'value' as currency,
    i.data ->> 'PrivateNote' as private_note,
    i.created_time,
    i.updated_time,
    i.deleted,
    {{ qbo_url("'Invoice'", 'i.qbo_id') }} as qbo_url
from {{ source('raw_qbo', 'invoices') }} as i
{{ sync_link('i', 'Invoice') }}
