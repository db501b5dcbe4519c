-- One line of a QBO-origin sale (executemany).
INSERT INTO app.sale_lines (sale_id, line_no, kind, description, item_name, qty, unit_price, amount)
VALUES (:sale_id, :line_no, :kind, :description, :item_name, :qty, :unit_price, :amount)
