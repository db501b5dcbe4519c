-- In every period, assets = liabilities + equity, to the cent.
select realm_id, period_end,
       sum(amount) filter (where side = 'Assets') as assets,
       sum(amount) filter (where side <> 'Assets') as liabilities_and_equity
from {{ ref('balance_sheet') }}
group by 1, 2
having coalesce(sum(amount) filter (where side = 'Assets'), 0)
    <> coalesce(sum(amount) filter (where side <> 'Assets'), 0)
