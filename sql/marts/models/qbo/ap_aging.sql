-- Accounts payable aging per company and vendor as of today (the database's current_date):
-- open bills by due date, less open vendor credits and unapplied bill payments by date, plus
-- journal entries to A/P naming the vendor; buckets Current (not yet due), 1-30, 31-60,
-- 61-90, 91+ days late. Amounts are what the company owes (positive).
with as_of as (
    select current_date as as_of_date
),

open_items as (
    select realm_id, ref_id as vendor_qbo_id, coalesce(due_date, txn_date) as aging_date,
           {{ cents('balance') }} as amount
    from {{ source('raw_qbo', 'bills') }}, as_of
    where not deleted and txn_date <= as_of_date
    union all
    select realm_id, ref_id, txn_date, -{{ cents('coalesce(balance, total_amt)') }}
    from {{ source('raw_qbo', 'vendor_credits') }}, as_of
    where not deleted and txn_date <= as_of_date
    union all
    -- a bill payment's TotalAmt less what it applies (bills count positive, vendor credits
    -- negative, as QBO nets them within one payment): what it paid ahead of any bill
    select b.realm_id, b.ref_id, b.txn_date,
           -({{ cents('b.total_amt') }} - coalesce((
               select sum(case when x.link ->> 'TxnType' = 'VendorCredit' then -1 else 1 end
                          * {{ cents(num("ln.line ->> 'Amount'")) }})
               from jsonb_array_elements({{ json_array("b.data -> 'Line'") }}) as ln (line),
                    jsonb_array_elements({{ json_array("ln.line -> 'LinkedTxn'") }}) as x (link)
               where x.link ->> 'TxnType' in ('Bill', 'VendorCredit')), 0))
    from {{ source('raw_qbo', 'bill_payments') }} as b, as_of
    where not b.deleted and b.txn_date <= as_of_date
    union all
    select realm_id, party_qbo_id, txn_date, -amount
    from {{ ref('general_ledger') }}, as_of
    where txn_type = 'JournalEntry' and party_type = 'Vendor'
      and account_type = 'Accounts Payable' and txn_date <= as_of_date
),

{{ aging_ctes('vendor_qbo_id') }}

select
    p.realm_id,
    as_of.as_of_date,
    p.vendor_qbo_id,
    coalesce(v.name, p.vendor_qbo_id) as vendor_name,
    {{ aging_columns() }}
from per_party as p
cross join as_of
left join {{ source('raw_qbo', 'vendors') }} as v
       on v.realm_id = p.realm_id and v.qbo_id = p.vendor_qbo_id and not v.deleted
where {{ aging_nonzero() }}
