{{ config(meta={'dagster': {'ref': {'name': 'ap_aging'}}}) }}
-- The A/P aging totals what the ledger's Accounts Payable accounts hold on its
-- date, per company, to the cent: each open item is a payable those accounts carry.
with ledger as (
    select realm_id, sum(natural_amount) as balance
    from {{ ref('general_ledger') }}
    where account_type = 'Accounts Payable' and txn_date <= current_date
    group by 1
),

aging as (
    select realm_id, sum(total) as balance from {{ ref('ap_aging') }} group by 1
)

select realm_id, l.balance as ledger_balance, a.balance as aging_total
from ledger as l
full join aging as a using (realm_id)
where coalesce(l.balance, 0) <> coalesce(a.balance, 0)
