-- Canonical items (service types / products). Params: :after, :limit, :read_all, :ids.
SELECT id AS source_id, name, kind, description, unit_price, active, updated_at
FROM app.products
WHERE id > :after AND (:read_all OR id IN :ids)
ORDER BY id
LIMIT :limit
