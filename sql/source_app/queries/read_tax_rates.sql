-- Canonical tax rates. Params: :after, :limit, :read_all, :ids.
SELECT id AS source_id, name, rate, updated_at
FROM app.tax_rates
WHERE id > :after AND (:read_all OR id IN :ids)
ORDER BY id
LIMIT :limit
