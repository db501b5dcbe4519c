-- staging.qbo_contacts, qbo_sales, qbo_receipts and qbo_customer_transactions were made for a
-- pull that would stage canonical QBO records before writing them to the source app. The pull
-- that was built writes from raw_qbo (newest version per object) through sync.record_state and
-- never wrote these tables: they stayed empty, and an analyst reading them saw no pull at all.
-- What the pull read is in raw_qbo.*, what it did in sync.record_state and sync.ledger.
DROP TABLE IF EXISTS staging.qbo_contacts;
DROP TABLE IF EXISTS staging.qbo_sales;
DROP TABLE IF EXISTS staging.qbo_receipts;
DROP TABLE IF EXISTS staging.qbo_customer_transactions;
