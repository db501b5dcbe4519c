-- One hash per sale of all its lines, for the sales in the id range (:after, :last].
-- Read with the sales' own row hashes (the header row wrapped by the connector) so that a change
-- to any line changes the sale's row hash. Params: :after, :last.
-- Lines in line_no order: unique per sale (the table's UNIQUE key), so the index's order
-- is the aggregate's and no sort runs (the same hash as ordering by line_no, id did).
SELECT l.sale_id AS parent_id, md5(string_agg(l::text, ',' ORDER BY l.line_no)) AS lines_hash
FROM app.sale_lines l
WHERE l.sale_id > :after AND l.sale_id <= :last
GROUP BY l.sale_id
