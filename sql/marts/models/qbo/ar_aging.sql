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
    where txn_type = 'JournalEntry' and party_type = 'Customer' and txn_date <= as_of_date
),

bucketed as (
    select o.realm_id, o.customer_qbo_id, o.amount,
           case when as_of_date - o.aging_date <= 0 then 0
                else least((as_of_date - o.aging_date - 1) / 30 + 1, 4) end as bucket
    from open_items as o, as_of
    where o.customer_qbo_id is not null and o.amount <> 0 and o.aging_date is not null
),

per_customer as (
    select realm_id, customer_qbo_id,
           sum(amount) filter (where bucket = 0) as current_amount,
           sum(amount) filter (where bucket = 1) as days_1_30,
           sum(amount) filter (where bucket = 2) as days_31_60,
           sum(amount) filter (where bucket = 3) as days_61_90,
           sum(amount) filter (where bucket = 4) as days_91_and_over,
           sum(amount) as total
    from bucketed
    group by 1, 2
)

select
    p.realm_id,
    as_of.as_of_date,
    p.customer_qbo_id,
    coalesce(c.data ->> 'FullyQualifiedName', c.name, p.customer_qbo_id) as customer_name,
    coalesce(p.current_amount, 0) as current_amount,
    coalesce(p.days_1_30, 0) as days_1_30,
    coalesce(p.days_31_60, 0) as days_31_60,
    coalesce(p.days_61_90, 0) as days_61_90,
    coalesce(p.days_91_and_over, 0) as days_91_and_over,
    p.total
from per_customer as p
cross join as_of
left join {{ source('raw_qbo', 'customers') }} as c
       on c.realm_id = p.realm_id and c.qbo_id = p.customer_qbo_id and not c.deleted
where p.current_amount <> 0 or p.days_1_30 <> 0 or p.days_31_60 <> 0 or p.days_61_90 <> 0
   or p.days_91_and_over <> 0 or p.total <> 0
