-- mapping: per-company (realm) mappings and settings (R10, R12, R13, R19, R21, R23, R24, R30,
-- R32). Idempotent. Every table has realm_id, so a disconnect clears them all (R1).

CREATE TABLE IF NOT EXISTS mapping.settings (
    realm_id                    text        PRIMARY KEY,
    sync_enabled                boolean     NOT NULL DEFAULT true,   -- automatic sync on/off (R30)
    paused                      boolean     NOT NULL DEFAULT false,  -- paused by the operator (R30)
    debounce_seconds            integer     NOT NULL DEFAULT 120 CHECK (debounce_seconds >= 0),
    max_wait_seconds            integer     NOT NULL DEFAULT 900 CHECK (max_wait_seconds >= 0),
    pull_interval_hours         integer     NOT NULL DEFAULT 12 CHECK (pull_interval_hours > 0),
    default_income_account_id   text,       -- income account of Service items the sync creates (R10)
    default_tax_code_id         text,       -- tax code for lines without a tax rate (R13)
    default_deposit_account_id  text,       -- Bank account when a payment method has none (R21)
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    updated_by                  text
);
COMMENT ON TABLE mapping.settings IS 'Per-company defaults and switches (sync enabled, paused, debounce, max wait, pull interval).';

CREATE TABLE IF NOT EXISTS mapping.tax_rates (
    realm_id          text        NOT NULL,
    source_id         text        NOT NULL,
    source_name       text        NOT NULL,
    qbo_tax_code_id   text        NOT NULL,
    qbo_tax_code_name text,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    updated_by        text,
    PRIMARY KEY (realm_id, source_id)
);
COMMENT ON TABLE mapping.tax_rates IS 'Source tax rate -> QBO tax code, per company (R12).';

CREATE TABLE IF NOT EXISTS mapping.items (
    realm_id       text        NOT NULL,
    source_id      text        NOT NULL,
    source_name    text        NOT NULL,
    qbo_item_id    text        NOT NULL,
    qbo_item_name  text,
    how            text        NOT NULL DEFAULT 'manual' CHECK (how IN ('manual', 'suggested', 'created')),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    updated_by     text,
    PRIMARY KEY (realm_id, source_id)
);
COMMENT ON TABLE mapping.items IS 'Source service type / product -> QBO Item (exact-name match, manual, or created by the sync), per company (R10).';

CREATE TABLE IF NOT EXISTS mapping.payment_methods (
    realm_id                  text        NOT NULL,
    source_id                 text        NOT NULL,
    source_name               text        NOT NULL,
    qbo_payment_method_id     text,
    qbo_payment_method_name   text,
    deposit_account_id        text,
    deposit_account_name      text,
    updated_at                timestamptz NOT NULL DEFAULT now(),
    updated_by                text,
    PRIMARY KEY (realm_id, source_id),
    CONSTRAINT payment_method_maps_something
        CHECK (qbo_payment_method_id IS NOT NULL OR deposit_account_id IS NOT NULL)
);
COMMENT ON TABLE mapping.payment_methods IS 'Source payment method -> QBO payment method + Bank deposit account, per company (R19, R21).';

CREATE TABLE IF NOT EXISTS mapping.expense_concepts (
    realm_id              text        NOT NULL,
    concept               text        NOT NULL,
    expense_account_id    text        NOT NULL,
    expense_account_name  text,
    updated_at            timestamptz NOT NULL DEFAULT now(),
    updated_by            text,
    PRIMARY KEY (realm_id, concept)
);
COMMENT ON TABLE mapping.expense_concepts IS 'Worker-invoice concept -> QBO expense account, per company; reused until disconnect (R23, R24).';
