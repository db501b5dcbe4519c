-- Source sale ids (and origin) of QBO invoices. Params: :realm_id, :qbo_ids (expanding).
SELECT qbo_id, id AS source_id, origin FROM app.sales WHERE qbo_realm_id = :realm_id AND qbo_id IN :qbo_ids
