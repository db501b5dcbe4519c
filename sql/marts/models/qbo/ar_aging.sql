-- Accounts receivable aging per company and customer as of today (the database's current_date),
-- the way QBO's A/R Aging Summary computes it: open invoices by due date, less open credit
-- memos and unapplied payments by date, plus journal entries to A/R naming the customer;
-- days late = as_of_date - that date; buckets Current (not yet due), 1-30, 31-60, 61-90, 91+.
with as_of as (
    select current_date as as_of_date
),

open_items as (
    select realm_id, ref_id as customer_qbo_id, coalesce(due_date, txn_date) as aging_date,
           {{ cents('balance') }} as amount
    from {{ source('raw_qbo', 'invoices') }}, as_of
    where not deleted and txn_date <= as_of_date
    union all
    select realm_id, ref_id, txn_date, -{{ cents('balance') }}
    from {{ source('raw_qbo', 'credit_memos') }}, as_of
    where not deleted and txn_date <= as_of_date
    union all
    select realm_id, ref_id, txn_date, -{{ cents(num("data ->> 'UnappliedAmt'")) }}
    from {{ source('raw_qbo', 'payments') }}, as_of
    where not deleted and txn_date <= as_of_date
    union all
    select realm_id, party_qbo_id, txn_date, amount
    from {{ ref('general_ledger') }}, as_of
    where txn_type = 'JournalEntry' and party_type = 'Customer'
      and account_type = 'Accounts Receivable' and txn_date <= as_of_date
),

{{ aging_ctes('customer_qbo_id') }}

select
    p.realm_id,
    as_of.as_of_date,
    p.customer_qbo_id,
    coalesce(c.data ->> 'FullyQualifiedName', c.name, p.customer_qbo_id) as customer_name,
    {{ aging_columns() }}
from per_party as p
cross join as_of
left join {{ source('raw_qbo', 'customers') }} as c
       on c.realm_id = p.realm_id and c.qbo_id = p.customer_qbo_id and not c.deleted
where {{ aging_nonzero() }}
