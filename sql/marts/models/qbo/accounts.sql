-- The chart of accounts per company, classified the way QBO's reports do, plus the placeholder
-- accounts QBO posts to when a company lacks one (Undeposited Funds, Sales Tax Payable, ...),
-- and which account is the company's default for each posting role.
with raw as (
    select
        realm_id,
        qbo_id,
        coalesce(data ->> 'FullyQualifiedName', name) as account_name,
        coalesce(type, '') as account_type,
        sub_type as account_sub_type,
        coalesce(active, true) as active,
        {{ num("data ->> 'CurrentBalance'") }} as current_balance,
        false as is_placeholder
    from {{ source('raw_qbo', 'accounts') }}
    where not deleted
),

realms as (
    select realm_id from {{ source('raw_qbo', 'accounts') }}
    union
    select realm_id from {{ source('raw_qbo', 'company_info') }}
),

placeholders as (
    select r.realm_id, p.qbo_id, p.account_name, p.account_type, p.account_sub_type,
           true as active, null::numeric as current_balance, true as is_placeholder
    from realms as r
    cross join (values
        ('~AR', 'Accounts Receivable (A/R)', 'Accounts Receivable', 'AccountsReceivable'),
        ('~AP', 'Accounts Payable (A/P)', 'Accounts Payable', 'AccountsPayable'),
        ('~UF', 'Undeposited Funds', 'Other Current Asset', 'UndepositedFunds'),
        ('~TAX', 'Sales Tax Payable', 'Other Current Liability', 'SalesTaxPayable'),
        ('~INCOME', 'Uncategorized Income', 'Income', null),
        ('~EXPENSE', 'Uncategorized Expense', 'Expense', null),
        ('~EQUITY', 'Opening Balance Equity', 'Equity', 'OpeningBalanceEquity')
    ) as p (qbo_id, account_name, account_type, account_sub_type)
),

-- The account QBO uses when a transaction names none: the first active account of the
-- sub-type, else (A/R, A/P, income, expense) the first active one of the type.
roles as (
    select distinct on (a.realm_id, k.role) a.realm_id, k.role, a.qbo_id
    from raw as a
    join (values
        ('AR', 'AccountsReceivable', null, 1), ('AR', null, 'Accounts Receivable', 2),
        ('AP', 'AccountsPayable', null, 1), ('AP', null, 'Accounts Payable', 2),
        ('UF', 'UndepositedFunds', null, 1),
        ('TAX', 'SalesTaxPayable', null, 1),
        ('INCOME', null, 'Income', 2),
        ('EXPENSE', null, 'Expense', 2)
    ) as k (role, sub_type, acct_type, priority)
      on a.account_sub_type = k.sub_type or a.account_type = k.acct_type
    where a.active
    order by a.realm_id, k.role, k.priority, length(a.qbo_id), a.qbo_id
),

all_accounts as (
    select * from raw
    union all
    select * from placeholders
)

select
    a.realm_id,
    a.qbo_id as account_qbo_id,
    a.account_name,
    a.account_type,
    a.account_sub_type,
    case
        when a.account_type in ('Bank', 'Other Current Asset', 'Fixed Asset', 'Other Asset',
                                'Accounts Receivable') then 'Asset'
        when a.account_type in ('Accounts Payable', 'Credit Card', 'Long Term Liability',
                                'Other Current Liability') then 'Liability'
        when a.account_type = 'Equity' then 'Equity'
        when a.account_type in ('Income', 'Other Income') then 'Revenue'
        else 'Expense'
    end as classification,
    case
        when a.account_type in ('Bank', 'Accounts Receivable', 'Other Current Asset') then 'current_asset'
        when a.account_type in ('Fixed Asset', 'Other Asset') then 'long_term_asset'
        when a.account_type in ('Accounts Payable', 'Credit Card', 'Other Current Liability') then 'current_liability'
        when a.account_type = 'Long Term Liability' then 'long_term_liability'
        when a.account_type = 'Equity' then 'equity'
        when a.account_type in ('Income', 'Cost of Goods Sold', 'Expense', 'Other Income', 'Other Expense') then 'profit_and_loss'
        else 'unclassified'
    end as financial_statement_group,
    a.active,
    a.current_balance,
    a.is_placeholder,
    coalesce(
        (select string_agg(r.role, ',' order by r.role) from roles as r
         where r.realm_id = a.realm_id and r.qbo_id = a.qbo_id),
        case when a.is_placeholder
                  and not exists (select 1 from roles as r where r.realm_id = a.realm_id
                                  and '~' || r.role = a.qbo_id)
                  and a.qbo_id <> '~EQUITY'
             then substr(a.qbo_id, 2) end
    ) as default_for
from all_accounts as a
