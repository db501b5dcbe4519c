-- Lines of the given sales. Params: :ids (a list, sent as one array).
SELECT sale_id, line_no, kind, description, product_id AS item_source_id, qty, unit_price, amount,
       tax_rate_id AS tax_rate_source_id, discount_percent, group_name
FROM app.sale_lines
WHERE sale_id = ANY(:ids)
ORDER BY sale_id, line_no
