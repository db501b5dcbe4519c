-- Lines of QBO invoices (item, discount and description lines; QBO's subtotal line omitted).
select
    l.realm_id,
    l.qbo_id as invoice_qbo_id,
    l.line_seq,
    l.line_id,
    l.line_num,
    l.detail_type,
    l.description,
    l.amount,
    l.item_id as item_qbo_id,
    l.item_name,
    l.qty,
    l.unit_price,
    l.tax_code_id as tax_code,
    l.service_date,
    {{ num("l.data -> 'DiscountLineDetail' ->> 'DiscountPercent'") }} as discount_percent,
    l.deleted
from {{ source('raw_qbo', 'invoice_lines') }} as l
where coalesce(l.detail_type, '') <> 'SubTotalLineDetail'
