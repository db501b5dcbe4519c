-- A source record deleted in the source whose QBO record is kept (R9: contacts, and whatever
-- the catalogue never deletes in QBO) is retired: status 'deleted', deleted_in_source. It no
-- longer holds its name in QBO's name space (record_state_name_uq): a record entered again
-- under that name matches the QBO record by its name (R5) and takes over its link, instead of
-- being held as a duplicate of a record that no longer exists. Retirement now releases the
-- name; this releases the names of records retired before.
UPDATE sync.record_state
   SET name_key = NULL, updated_at = now()
 WHERE deleted_in_source AND status = 'deleted' AND name_key IS NOT NULL;
