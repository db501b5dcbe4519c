-- Comments on every table, view and column that lacked one (issue 13: analysts read the
-- catalog). Idempotent (COMMENT ON replaces). Later migrations comment their own objects;
-- tests/integration/warehouse/test_comments.py fails on any table or column left without one.

-- public.schema_migrations is created and commented by the migration runner itself.

-- raw_source and staging: the columns every push-direction table shares --------------------
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['customers', 'items', 'tax_rates', 'payment_methods', 'invoices',
                             'payments', 'vendors', 'bills']
    LOOP
        EXECUTE 'COMMENT ON COLUMN raw_source.' || quote_ident(t) || '.source_id IS '
             || quote_literal('Id of the record in the source app.');
        EXECUTE 'COMMENT ON COLUMN raw_source.' || quote_ident(t) || '.data IS '
             || quote_literal('The record as read, as canonical JSON (qbo_pipelines.canonical; decimals as strings, times in UTC).');
        EXECUTE 'COMMENT ON COLUMN raw_source.' || quote_ident(t) || '.content_hash IS '
             || quote_literal('Hash of the canonical record''s content (unchanged since the last read when equal).');
        EXECUTE 'COMMENT ON COLUMN raw_source.' || quote_ident(t) || '.source_updated_at IS '
             || quote_literal('When the source app last changed the record.');
        EXECUTE 'COMMENT ON COLUMN raw_source.' || quote_ident(t) || '.deleted IS '
             || quote_literal('True once the record was hard-deleted in the source (the row is kept).');
        EXECUTE 'COMMENT ON COLUMN raw_source.' || quote_ident(t) || '.deleted_at IS '
             || quote_literal('When the delete was first seen.');
        EXECUTE 'COMMENT ON COLUMN raw_source.' || quote_ident(t) || '.first_seen_at IS '
             || quote_literal('When the company''s push first read the record.');
        EXECUTE 'COMMENT ON COLUMN raw_source.' || quote_ident(t) || '.loaded_at IS '
             || quote_literal('When the row was last written.');
        EXECUTE 'COMMENT ON COLUMN raw_source.' || quote_ident(t) || '.run_id IS '
             || quote_literal('Dagster run id of the push run that last read it (see sync.ledger.run_id).');

        EXECUTE 'COMMENT ON TABLE staging.' || quote_ident(t) || ' IS '
             || quote_literal('Canonical source ' || t || ' a company''s push run is about to write to QBO: the JSON plus typed columns checked by the Great Expectations suite (docs/data-quality.md); merge on (realm_id, source_id).');
        EXECUTE 'COMMENT ON COLUMN staging.' || quote_ident(t) || '.source_id IS '
             || quote_literal('Id of the record in the source app.');
        EXECUTE 'COMMENT ON COLUMN staging.' || quote_ident(t) || '.content_hash IS '
             || quote_literal('Hash of the canonical record''s content.');
        EXECUTE 'COMMENT ON COLUMN staging.' || quote_ident(t) || '.data IS '
             || quote_literal('The canonical record as JSON (decimals as strings, times in UTC).');
        EXECUTE 'COMMENT ON COLUMN staging.' || quote_ident(t) || '.updated_at IS '
             || quote_literal('When the source app last changed the record.');
        EXECUTE 'COMMENT ON COLUMN staging.' || quote_ident(t) || '.staged_at IS '
             || quote_literal('When the row was staged.');
        EXECUTE 'COMMENT ON COLUMN staging.' || quote_ident(t) || '.run_id IS '
             || quote_literal('Dagster run id of the push run that staged it: with realm_id, the batch the GX suite validates.');
    END LOOP;

    FOREACH t IN ARRAY ARRAY['qbo_contacts', 'qbo_sales', 'qbo_receipts',
                             'qbo_customer_transactions']
    LOOP
        EXECUTE 'COMMENT ON TABLE staging.' || quote_ident(t) || ' IS '
             || quote_literal('Canonical QBO records (' || substr(t, 5) || ') a pull run writes to the source app; merge on (realm_id, qbo_id).');
        EXECUTE 'COMMENT ON COLUMN staging.' || quote_ident(t) || '.realm_id IS '
             || quote_literal('QBO company (realm id).');
        EXECUTE 'COMMENT ON COLUMN staging.' || quote_ident(t) || '.qbo_id IS '
             || quote_literal('QBO Id of the record (for transactions: <type>:<Id>, ids repeat across types).');
        EXECUTE 'COMMENT ON COLUMN staging.' || quote_ident(t) || '.content_hash IS '
             || quote_literal('Hash of the canonical record''s content.');
        EXECUTE 'COMMENT ON COLUMN staging.' || quote_ident(t) || '.data IS '
             || quote_literal('The canonical record as JSON (decimals as strings, times in UTC).');
        EXECUTE 'COMMENT ON COLUMN staging.' || quote_ident(t) || '.updated_at IS '
             || quote_literal('QBO''s LastUpdatedTime of the record.');
        EXECUTE 'COMMENT ON COLUMN staging.' || quote_ident(t) || '.staged_at IS '
             || quote_literal('When the row was staged.');
        EXECUTE 'COMMENT ON COLUMN staging.' || quote_ident(t) || '.run_id IS '
             || quote_literal('Dagster run id of the pull run that staged it.');
    END LOOP;
END $$;
COMMENT ON COLUMN staging.qbo_customer_transactions.txn_type IS
    'QBO transaction type (Invoice, Payment, Estimate, SalesReceipt, CreditMemo, RefundReceipt).';

-- mapping --------------------------------------------------------------------------------------
COMMENT ON COLUMN mapping.settings.realm_id IS 'QBO company (realm id).';
COMMENT ON COLUMN mapping.settings.sync_enabled IS 'Automatic sync on (the sensor and schedules start runs for this company).';
COMMENT ON COLUMN mapping.settings.paused IS 'Paused by an operator: no run writes for this company until resumed.';
COMMENT ON COLUMN mapping.settings.debounce_seconds IS 'Quiet time after the last source change before a push starts (R27).';
COMMENT ON COLUMN mapping.settings.max_wait_seconds IS 'Longest a source change waits for a push, however busy the source (R30).';
COMMENT ON COLUMN mapping.settings.pull_interval_hours IS 'Hours between scheduled pulls when no webhook arrives (R28).';
COMMENT ON COLUMN mapping.settings.default_income_account_id IS 'QBO income account of items the sync creates (R10).';
COMMENT ON COLUMN mapping.settings.default_tax_code_id IS 'QBO tax code used when a line has no tax rate.';
COMMENT ON COLUMN mapping.settings.default_deposit_account_id IS 'QBO account payments are deposited to when their method names none.';
COMMENT ON COLUMN mapping.settings.updated_at IS 'When the settings last changed.';
COMMENT ON COLUMN mapping.settings.updated_by IS 'Who changed them (user, cli, demo).';

COMMENT ON COLUMN mapping.tax_rates.realm_id IS 'QBO company (realm id).';
COMMENT ON COLUMN mapping.tax_rates.source_id IS 'Id of the tax rate in the source app.';
COMMENT ON COLUMN mapping.tax_rates.source_name IS 'Name of the tax rate in the source app.';
COMMENT ON COLUMN mapping.tax_rates.qbo_tax_code_id IS 'QBO TaxCode Id it maps to (R12).';
COMMENT ON COLUMN mapping.tax_rates.qbo_tax_code_name IS 'QBO TaxCode name when mapped.';
COMMENT ON COLUMN mapping.tax_rates.updated_at IS 'When the mapping last changed.';
COMMENT ON COLUMN mapping.tax_rates.updated_by IS 'Who set it.';

COMMENT ON COLUMN mapping.items.realm_id IS 'QBO company (realm id).';
COMMENT ON COLUMN mapping.items.source_id IS 'Id of the service type / product in the source app.';
COMMENT ON COLUMN mapping.items.source_name IS 'Its name in the source app.';
COMMENT ON COLUMN mapping.items.qbo_item_id IS 'QBO Item Id it maps to.';
COMMENT ON COLUMN mapping.items.qbo_item_name IS 'QBO Item name when mapped.';
COMMENT ON COLUMN mapping.items.how IS 'manual (set by a person), suggested (exact name match, R10) or created (by the sync).';
COMMENT ON COLUMN mapping.items.updated_at IS 'When the mapping last changed.';
COMMENT ON COLUMN mapping.items.updated_by IS 'Who set it.';

COMMENT ON COLUMN mapping.payment_methods.realm_id IS 'QBO company (realm id).';
COMMENT ON COLUMN mapping.payment_methods.source_id IS 'Id of the payment method in the source app.';
COMMENT ON COLUMN mapping.payment_methods.source_name IS 'Its name in the source app.';
COMMENT ON COLUMN mapping.payment_methods.qbo_payment_method_id IS 'QBO PaymentMethod Id it maps to (R19).';
COMMENT ON COLUMN mapping.payment_methods.qbo_payment_method_name IS 'QBO PaymentMethod name when mapped.';
COMMENT ON COLUMN mapping.payment_methods.deposit_account_id IS 'QBO account payments of this method are deposited to.';
COMMENT ON COLUMN mapping.payment_methods.deposit_account_name IS 'Name of that account.';
COMMENT ON COLUMN mapping.payment_methods.updated_at IS 'When the mapping last changed.';
COMMENT ON COLUMN mapping.payment_methods.updated_by IS 'Who set it.';

COMMENT ON COLUMN mapping.expense_concepts.realm_id IS 'QBO company (realm id).';
COMMENT ON COLUMN mapping.expense_concepts.concept IS 'Concept of a worker-invoice line in the source app (R24).';
COMMENT ON COLUMN mapping.expense_concepts.expense_account_id IS 'QBO expense account Id bills of this concept are booked to.';
COMMENT ON COLUMN mapping.expense_concepts.expense_account_name IS 'Name of that account.';
COMMENT ON COLUMN mapping.expense_concepts.updated_at IS 'When the mapping last changed.';
COMMENT ON COLUMN mapping.expense_concepts.updated_by IS 'Who set it.';

-- sync -----------------------------------------------------------------------------------------
COMMENT ON COLUMN sync.companies.realm_id IS 'QBO company (realm id).';
COMMENT ON COLUMN sync.companies.company_name IS 'The company''s name in QBO.';
COMMENT ON COLUMN sync.companies.status IS 'connected, needs_reconnect (QBO rejected the refresh token) or disconnected.';
COMMENT ON COLUMN sync.companies.status_reason IS 'Why the status is not connected.';
COMMENT ON COLUMN sync.companies.home_currency IS 'The company''s home currency (invoices take it, R15).';
COMMENT ON COLUMN sync.companies.connected_at IS 'When it was first connected.';
COMMENT ON COLUMN sync.companies.updated_at IS 'When the row last changed.';

COMMENT ON TABLE sync.cursors IS 'Named positions per company: source change-log horizon, QBO CDC time, last pull.';
COMMENT ON COLUMN sync.cursors.realm_id IS 'QBO company (realm id).';
COMMENT ON COLUMN sync.cursors.name IS 'Which position (e.g. push:<entity>, cdc, last pull).';
COMMENT ON COLUMN sync.cursors.value IS 'The position, as text.';
COMMENT ON COLUMN sync.cursors.updated_at IS 'When it last moved.';

COMMENT ON COLUMN sync.id_map.realm_id IS 'QBO company (realm id).';
COMMENT ON COLUMN sync.id_map.entity IS 'Catalogue entity (customers, invoices, ...).';
COMMENT ON COLUMN sync.id_map.source_id IS 'Id in the source app.';
COMMENT ON COLUMN sync.id_map.qbo_id IS 'QBO Id.';
COMMENT ON COLUMN sync.id_map.qbo_entity IS 'QBO entity the record is (Invoice or CreditMemo for a sale).';
COMMENT ON COLUMN sync.id_map.created_by IS 'Who created the QBO side: sync, qbo or matched.';
COMMENT ON COLUMN sync.id_map.sync_token IS 'QBO SyncToken after the last write or read.';
COMMENT ON COLUMN sync.id_map.source_hash IS 'Content hash of the source side at the last sync.';
COMMENT ON COLUMN sync.id_map.qbo_hash IS 'Content hash of the QBO side at the last sync.';
COMMENT ON COLUMN sync.id_map.qbo_updated_at IS 'QBO LastUpdatedTime at the last sync.';
COMMENT ON COLUMN sync.id_map.deleted_in_source IS 'The record was deleted in the source app.';
COMMENT ON COLUMN sync.id_map.deleted_in_qbo IS 'The record was deleted in QBO.';
COMMENT ON COLUMN sync.id_map.last_synced_at IS 'When it last synced.';
COMMENT ON COLUMN sync.id_map.last_run_id IS 'Dagster run id of the last sync.';
COMMENT ON COLUMN sync.id_map.last_payload IS 'The last payload written to QBO.';
COMMENT ON COLUMN sync.id_map.sent_at IS 'When QBO last emailed the invoice (R18).';
COMMENT ON COLUMN sync.id_map.sent_to IS 'The address QBO emailed it to.';

COMMENT ON COLUMN sync.ledger.id IS 'Order of the entries.';
COMMENT ON COLUMN sync.ledger.run_id IS 'Dagster run id of the attempt (R37).';
COMMENT ON COLUMN sync.ledger.realm_id IS 'QBO company (realm id).';
COMMENT ON COLUMN sync.ledger.entity IS 'Catalogue entity (customers, invoices, ...).';
COMMENT ON COLUMN sync.ledger.direction IS 'push (source to QBO), pull (QBO to source) or reconcile.';
COMMENT ON COLUMN sync.ledger.source_id IS 'Id in the source app.';
COMMENT ON COLUMN sync.ledger.qbo_id IS 'QBO Id.';
COMMENT ON COLUMN sync.ledger.operation IS 'create, update, delete, void, match, send, skip, hold, conflict or upsert.';
COMMENT ON COLUMN sync.ledger.outcome IS 'ok, failed, held, skipped or conflict.';
COMMENT ON COLUMN sync.ledger.error_code IS 'QBO error code (or the data-quality rule) when not ok.';
COMMENT ON COLUMN sync.ledger.error_message IS 'The error or hold reason.';
COMMENT ON COLUMN sync.ledger.request_id IS 'QBO requestid of the write (idempotency key).';
COMMENT ON COLUMN sync.ledger.payload_hash IS 'Hash of the payload written.';
COMMENT ON COLUMN sync.ledger.details IS 'More about the attempt (fields changed, conflict values, fix).';
COMMENT ON COLUMN sync.ledger.at IS 'When it happened.';

COMMENT ON TABLE sync.notifications IS 'Operator notifications (R31): one open row per record and problem, resolved when it is gone.';
COMMENT ON COLUMN sync.notifications.id IS 'Notification id.';
COMMENT ON COLUMN sync.notifications.realm_id IS 'QBO company (realm id).';
COMMENT ON COLUMN sync.notifications.entity IS 'Catalogue entity, or run / company for run and connection problems.';
COMMENT ON COLUMN sync.notifications.record_id IS 'The record (source id), job or company it is about.';
COMMENT ON COLUMN sync.notifications.severity IS 'info, warning or error.';
COMMENT ON COLUMN sync.notifications.title IS 'The problem in a few words (one open row per record and title).';
COMMENT ON COLUMN sync.notifications.reason IS 'What is wrong, naming the record and the value.';
COMMENT ON COLUMN sync.notifications.fix IS 'What to do about it.';
COMMENT ON COLUMN sync.notifications.created_at IS 'When it was opened.';
COMMENT ON COLUMN sync.notifications.resolved_at IS 'When its cause was gone (NULL while open).';

COMMENT ON COLUMN sync.qbo_app.name IS 'Which app (one row: default).';
COMMENT ON COLUMN sync.qbo_app.client_id IS 'The QBO app''s OAuth client id.';
COMMENT ON COLUMN sync.qbo_app.client_secret_enc IS 'Its client secret, encrypted with the token key (never printed).';
COMMENT ON COLUMN sync.qbo_app.api_url IS 'Accounting API base URL.';
COMMENT ON COLUMN sync.qbo_app.oauth_url IS 'OAuth endpoints base URL.';
COMMENT ON COLUMN sync.qbo_app.redirect_uri IS 'The app''s registered redirect URI.';
COMMENT ON COLUMN sync.qbo_app.updated_at IS 'When it was stored.';

COMMENT ON COLUMN sync.qbo_tokens.realm_id IS 'QBO company (realm id).';
COMMENT ON COLUMN sync.qbo_tokens.access_token_enc IS 'OAuth access token, encrypted with the token key.';
COMMENT ON COLUMN sync.qbo_tokens.refresh_token_enc IS 'OAuth refresh token, encrypted with the token key.';
COMMENT ON COLUMN sync.qbo_tokens.access_expires_at IS 'When the access token expires (one hour after issue).';
COMMENT ON COLUMN sync.qbo_tokens.refresh_expires_at IS 'When the refresh token expires.';
COMMENT ON COLUMN sync.qbo_tokens.refreshed_at IS 'When the tokens were last refreshed.';
COMMENT ON COLUMN sync.qbo_tokens.created_at IS 'When the company was first authorised.';

COMMENT ON COLUMN sync.quarantine.realm_id IS 'QBO company (realm id).';
COMMENT ON COLUMN sync.quarantine.entity IS 'Catalogue entity (customers, invoices, ...).';
COMMENT ON COLUMN sync.quarantine.source_id IS 'Id of the held record in the source app.';
COMMENT ON COLUMN sync.quarantine.rule IS 'The rule broken (e.g. customer.email.format, mapping.tax_rate.missing); see qbo_pipelines/quality/constraints.py.';
COMMENT ON COLUMN sync.quarantine.reason IS 'Why it is held, naming the record and the value.';
COMMENT ON COLUMN sync.quarantine.fix IS 'What to do; the next run releases the record once it passes.';
COMMENT ON COLUMN sync.quarantine.first_seen IS 'When the problem was first seen.';
COMMENT ON COLUMN sync.quarantine.last_seen IS 'When a run last saw it.';
COMMENT ON COLUMN sync.quarantine.last_run_id IS 'Dagster run id of that run.';
COMMENT ON COLUMN sync.quarantine.resolved_at IS 'When the record passed again (NULL while held).';

COMMENT ON COLUMN sync.rate_budget.budget_key IS '<api base url>#<realm id>: one budget per QBO company.';
COMMENT ON COLUMN sync.rate_budget.lock_key IS 'Advisory-lock namespace of the in-flight slots.';
COMMENT ON COLUMN sync.rate_budget.paused_until IS 'After a 429: no new call before this.';
COMMENT ON COLUMN sync.rate_budget.updated_at IS 'When the row last changed.';
COMMENT ON COLUMN sync.rate_budget_call.budget_key IS 'The budget the call counted against.';
COMMENT ON COLUMN sync.rate_budget_call.at IS 'When the call was granted (database clock).';
COMMENT ON COLUMN sync.rate_budget_call.batch IS 'True for a batch call (40 a minute).';
