-- Balance sheet per company at the end of every month from its first transaction to this month
-- (accrual basis): one row per balance sheet account with a balance, plus the two lines QBO
-- computes, Retained Earnings (net income of the years before, plus retained-earnings
-- accounts) and Net Income (this fiscal year to the period end; fiscal years are calendar years).
with gl as (
    select * from {{ ref('general_ledger') }}
),

periods as (
    select realm_id,
           (gs + interval '1 month - 1 day')::date as period_end
    from (
        select realm_id, min(txn_date) as first_day, greatest(max(txn_date), current_date) as last_day
        from gl group by realm_id
    ) as span
    cross join lateral generate_series(date_trunc('month', first_day),
                                       date_trunc('month', last_day), interval '1 month') as gs
),

bs_accounts as (
    select distinct a.realm_id, a.account_qbo_id, a.account_name, a.account_type,
           a.account_sub_type, a.classification
    from {{ ref('accounts') }} as a
    join gl on gl.realm_id = a.realm_id and gl.account_qbo_id = a.account_qbo_id
    where a.account_type in ('Bank', 'Accounts Receivable', 'Other Current Asset', 'Fixed Asset',
                             'Other Asset', 'Accounts Payable', 'Credit Card',
                             'Other Current Liability', 'Long Term Liability', 'Equity')
),

monthly as (
    select realm_id, account_qbo_id,
           (date_trunc('month', txn_date) + interval '1 month - 1 day')::date as period_end,
           sum(natural_amount) as change
    from gl
    group by 1, 2, 3
),

balances as (
    select p.realm_id, p.period_end, a.account_qbo_id, a.account_name, a.account_type,
           a.account_sub_type,
           sum(coalesce(m.change, 0)) over (partition by p.realm_id, a.account_qbo_id
                                            order by p.period_end) as balance
    from periods as p
    join bs_accounts as a on a.realm_id = p.realm_id
    left join monthly as m
           on m.realm_id = p.realm_id and m.account_qbo_id = a.account_qbo_id
          and m.period_end = p.period_end
),

-- net income per month (credits to income less debits to costs), then per fiscal year
pl_monthly as (
    select p.realm_id, p.period_end,
           coalesce(sum(-g.amount), 0) as net_income
    from periods as p
    left join gl as g
           on g.realm_id = p.realm_id
          and g.classification in ('Revenue', 'Expense')
          and (date_trunc('month', g.txn_date) + interval '1 month - 1 day')::date = p.period_end
    group by 1, 2
),

equity_lines as (
    select realm_id, period_end,
           sum(net_income) over (partition by realm_id order by period_end) as cumulative,
           sum(net_income) over (partition by realm_id, extract(year from period_end)
                                 order by period_end) as year_to_date
    from pl_monthly
),

retained_accounts as (
    select realm_id, period_end, sum(balance) as balance
    from balances
    where account_sub_type = 'RetainedEarnings'
    group by 1, 2
),

lines as (
    select realm_id, period_end,
           case account_type
               when 'Bank' then 'BankAccounts'
               when 'Accounts Receivable' then 'AR'
               when 'Other Current Asset' then 'OtherCurrentAssets'
               when 'Fixed Asset' then 'FixedAssets'
               when 'Other Asset' then 'OtherAssets'
               when 'Accounts Payable' then 'AP'
               when 'Credit Card' then 'CreditCards'
               when 'Other Current Liability' then 'OtherCurrentLiabilities'
               when 'Long Term Liability' then 'LongTermLiabilities'
               else 'Equity'
           end as section,
           account_qbo_id as line_key,
           account_qbo_id,
           account_name as line_name,
           account_type,
           balance as amount
    from balances
    where balance <> 0 and coalesce(account_sub_type, '') <> 'RetainedEarnings'
    union all
    select e.realm_id, e.period_end, 'Equity', 'RetainedEarnings', null, 'Retained Earnings',
           'Equity', e.cumulative - e.year_to_date + coalesce(r.balance, 0)
    from equity_lines as e
    left join retained_accounts as r using (realm_id, period_end)
    union all
    select realm_id, period_end, 'Equity', 'NetIncome', null, 'Net Income', 'Equity', year_to_date
    from equity_lines
)

select
    realm_id,
    period_end,
    section,
    case when section in ('BankAccounts', 'AR', 'OtherCurrentAssets', 'FixedAssets', 'OtherAssets')
         then 'Assets'
         when section = 'Equity' then 'Equity'
         else 'Liabilities' end as side,
    line_key,
    account_qbo_id,
    line_name,
    account_type,
    amount
from lines
