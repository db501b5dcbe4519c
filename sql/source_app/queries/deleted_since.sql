-- Ids of one entity whose latest change after :after is a hard delete. Params: :entity, :after.
SELECT c.row_id
FROM app.change_log c
JOIN (
    SELECT row_id, max(seq) AS seq
    FROM app.change_log
    WHERE entity = :entity AND seq > :after
    GROUP BY row_id
) latest ON latest.seq = c.seq
WHERE c.op = 'delete'
ORDER BY c.row_id
