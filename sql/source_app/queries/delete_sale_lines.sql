-- Remove the lines of QBO-origin sales before re-inserting them. Params: :ids (expanding).
DELETE FROM app.sale_lines WHERE sale_id IN :ids AND sale_id IN (SELECT id FROM app.sales WHERE origin = 'qbo')
