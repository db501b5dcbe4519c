{#- Aging as QBO's aging reports compute it, from a CTE `open_items` (realm_id, <party>,
    aging_date, amount) and a CTE `as_of` (as_of_date): days late = as_of_date - aging_date,
    buckets Current (not yet due), 1-30, 31-60, 61-90, 91+. Defines the CTEs `bucketed` and
    `per_party` (one row per realm_id, <party> with the five buckets and the total). -#}
{% macro aging_ctes(party) -%}
bucketed as (
    select o.realm_id, o.{{ party }}, o.amount,
           case when as_of_date - o.aging_date <= 0 then 0
                else least((as_of_date - o.aging_date - 1) / 30 + 1, 4) end as bucket
    from open_items as o, as_of
    where o.{{ party }} is not null and o.amount <> 0 and o.aging_date is not null
),

per_party as (
    select realm_id, {{ party }},
           coalesce(sum(amount) filter (where bucket = 0), 0) as current_amount,
           coalesce(sum(amount) filter (where bucket = 1), 0) as days_1_30,
           coalesce(sum(amount) filter (where bucket = 2), 0) as days_31_60,
           coalesce(sum(amount) filter (where bucket = 3), 0) as days_61_90,
           coalesce(sum(amount) filter (where bucket = 4), 0) as days_91_and_over,
           sum(amount) as total
    from bucketed
    group by 1, 2
)
{%- endmacro %}

{#- The bucket columns of `per_party` (alias p), and the filter keeping parties with money. -#}
{% macro aging_columns() -%}
    p.current_amount, p.days_1_30, p.days_31_60, p.days_61_90, p.days_91_and_over, p.total
{%- endmacro %}

{% macro aging_nonzero() -%}
    (p.current_amount <> 0 or p.days_1_30 <> 0 or p.days_31_60 <> 0 or p.days_61_90 <> 0
     or p.days_91_and_over <> 0 or p.total <> 0)
{%- endmacro %}

{#- The rows of an aging (`aging`: ar_aging or ap_aging) whose company total differs from what
    the ledger's accounts of `account_type` hold on the aging date: a singular test's body. -#}
{% macro aging_differs_from_ledger(aging, account_type) -%}
with ledger as (
    select realm_id, sum(natural_amount) as balance
    from {{ ref('general_ledger') }}
    where account_type = '{{ account_type }}' and txn_date <= current_date
    group by 1
),

aging as (
    select realm_id, sum(total) as balance from {{ ref(aging) }} group by 1
)

select realm_id, l.balance as ledger_balance, a.balance as aging_total
from ledger as l
full join aging as a using (realm_id)
where coalesce(l.balance, 0) <> coalesce(a.balance, 0)
{%- endmacro %}
