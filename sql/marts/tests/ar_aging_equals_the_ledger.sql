{{ config(meta={'dagster': {'ref': {'name': 'ar_aging'}}}) }}
-- The A/R aging totals what the ledger's Accounts Receivable accounts hold on its
-- date, per company, to the cent: each open item is a receivable those accounts carry.
with ledger as (
    select realm_id, sum(natural_amount) as balance
    from {{ ref('general_ledger') }}
    where account_type = 'Accounts Receivable' and txn_date <= current_date
    group by 1
),

aging as (
    select realm_id, sum(total) as balance from {{ ref('ar_aging') }} group by 1
)

select realm_id, l.balance as ledger_balance, a.balance as aging_total
from ledger as l
full join aging as a using (realm_id)
where coalesce(l.balance, 0) <> coalesce(a.balance, 0)
