-- Profit and loss per company, month and account (accrual basis), from marts.general_ledger.
-- Amounts in the account's natural sign: income positive for income accounts, costs positive
-- for expense accounts. Net income of a month = sum(amount) of income and other income
-- less the sum of cost of goods sold, expenses and other expenses.
select
    realm_id,
    date_trunc('month', txn_date)::date as period_start,
    (date_trunc('month', txn_date) + interval '1 month - 1 day')::date as period_end,
    case account_type
        when 'Income' then 'Income'
        when 'Cost of Goods Sold' then 'COGS'
        when 'Expense' then 'Expenses'
        when 'Other Income' then 'OtherIncome'
        when 'Other Expense' then 'OtherExpenses'
    end as section,
    account_qbo_id,
    account_name,
    account_type,
    sum(natural_amount) as amount,
    sum(case when classification = 'Revenue' then natural_amount else -natural_amount end)
        as net_income_effect,
    count(*)::integer as postings
from {{ ref('general_ledger') }}
where account_type in ('Income', 'Cost of Goods Sold', 'Expense', 'Other Income', 'Other Expense')
group by 1, 2, 3, 4, 5, 6, 7
having sum(natural_amount) <> 0
