-- QBO Items (products and services) per company, with the accounts they post to.
select
    i.realm_id,
    i.qbo_id,
    s.source_id,
    s.created_by,
    i.name,
    coalesce(i.data ->> 'FullyQualifiedName', i.name) as fully_qualified_name,
    i.type as item_type,
    i.data ->> 'Description' as description,
    {{ num("i.data ->> 'UnitPrice'") }} as unit_price,
    {{ ref_id("i.data -> 'IncomeAccountRef'") }} as income_account_qbo_id,
    {{ ref_id("i.data -> 'ExpenseAccountRef'") }} as expense_account_qbo_id,
    {{ ref_id("i.data -> 'AssetAccountRef'") }} as asset_account_qbo_id,
    coalesce((i.data ->> 'Taxable') = 'true', false) as taxable,
    coalesce(i.active, true) as active,
    i.updated_time,
    i.deleted
from {{ source('raw_qbo', 'items') }} as i
{{ sync_link('i', 'Item') }}
