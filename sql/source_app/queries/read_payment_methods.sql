-- Canonical payment methods. Params: :after, :limit, :read_all, :ids.
SELECT id AS source_id, name, updated_at
FROM app.payment_methods
WHERE id > :after AND (:read_all OR id IN :ids)
ORDER BY id
LIMIT :limit
