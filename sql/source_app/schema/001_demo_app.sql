-- The demo source app: a small services business (contacts, sales, receipts, contractors).
-- Idempotent. Everything lives in schema "app". Rows that came from QBO carry origin = 'qbo'
-- and their QBO ids; the sync writes them back with the session setting
-- qbo_pipelines.origin = 'sync' so its own writes are recognisable in the change log (R35).

CREATE SCHEMA IF NOT EXISTS app;

CREATE TABLE IF NOT EXISTS app.organisations (
    id          bigserial   PRIMARY KEY,
    name        text        NOT NULL,
    website     text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS app.contacts (
    id                  bigserial   PRIMARY KEY,
    organisation_id     bigint      REFERENCES app.organisations (id) ON DELETE SET NULL,
    given_name          text,
    family_name         text,
    email               text,
    phone               text,
    address_line1       text,
    address_line2       text,
    city                text,
    region              text,
    postal_code         text,
    country             text,
    is_billing_contact  boolean     NOT NULL DEFAULT false,
    origin              text        NOT NULL DEFAULT 'source' CHECK (origin IN ('source', 'qbo')),
    qbo_realm_id        text,
    qbo_id              text,
    qbo_display_name    text,
    qbo_company_name    text,
    qbo_active          boolean,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS contacts_qbo_uq ON app.contacts (qbo_realm_id, qbo_id)
    WHERE qbo_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS contacts_org_idx ON app.contacts (organisation_id);

CREATE TABLE IF NOT EXISTS app.products (
    id           bigserial   PRIMARY KEY,
    name         text        NOT NULL,
    kind         text        NOT NULL DEFAULT 'service' CHECK (kind IN ('service', 'product')),
    description  text,
    unit_price   numeric(15, 2),
    active       boolean     NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS products_name_uq ON app.products (name);

CREATE TABLE IF NOT EXISTS app.tax_rates (
    id          bigserial     PRIMARY KEY,
    name        text          NOT NULL,
    rate        numeric(7, 4) NOT NULL,
    created_at  timestamptz   NOT NULL DEFAULT now(),
    updated_at  timestamptz   NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS tax_rates_name_uq ON app.tax_rates (name);

CREATE TABLE IF NOT EXISTS app.payment_methods (
    id          bigserial   PRIMARY KEY,
    name        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS payment_methods_name_uq ON app.payment_methods (name);

CREATE TABLE IF NOT EXISTS app.sales (
    id              bigserial      PRIMARY KEY,
    doc_number      text,
    contact_id      bigint         REFERENCES app.contacts (id) ON DELETE RESTRICT,
    txn_date        date           NOT NULL,
    due_date        date,
    currency        text           NOT NULL DEFAULT 'USD',
    memo            text,
    detail_level    text           NOT NULL DEFAULT 'summary'
                                   CHECK (detail_level IN ('summary', 'detailed')),
    grouping_label  text,
    send_requested  boolean        NOT NULL DEFAULT false,
    subtotal        numeric(15, 2) NOT NULL DEFAULT 0,
    discount_total  numeric(15, 2) NOT NULL DEFAULT 0,
    tax_total       numeric(15, 2) NOT NULL DEFAULT 0,
    total           numeric(15, 2) NOT NULL DEFAULT 0,
    balance         numeric(15, 2),
    origin          text           NOT NULL DEFAULT 'source' CHECK (origin IN ('source', 'qbo')),
    qbo_realm_id    text,
    qbo_id          text,
    qbo_customer_id text,
    qbo_email_status text,
    qbo_deleted     boolean        NOT NULL DEFAULT false,
    created_at      timestamptz    NOT NULL DEFAULT now(),
    updated_at      timestamptz    NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS sales_qbo_uq ON app.sales (qbo_realm_id, qbo_id)
    WHERE qbo_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS sales_contact_idx ON app.sales (contact_id);

CREATE TABLE IF NOT EXISTS app.sale_lines (
    id                bigserial      PRIMARY KEY,
    sale_id           bigint         NOT NULL REFERENCES app.sales (id) ON DELETE CASCADE,
    line_no           integer        NOT NULL,
    kind              text           NOT NULL DEFAULT 'item'
                                     CHECK (kind IN ('item', 'discount', 'tax')),
    description       text,
    product_id        bigint         REFERENCES app.products (id) ON DELETE RESTRICT,
    item_name         text,          -- for QBO-origin lines: the QBO item name
    qty               numeric(15, 4),
    unit_price        numeric(15, 4),
    amount            numeric(15, 2) NOT NULL DEFAULT 0,
    tax_rate_id       bigint         REFERENCES app.tax_rates (id) ON DELETE RESTRICT,
    discount_percent  numeric(7, 4),
    group_name        text,
    UNIQUE (sale_id, line_no)
);

CREATE TABLE IF NOT EXISTS app.receipts (
    id                 bigserial      PRIMARY KEY,
    sale_id            bigint         REFERENCES app.sales (id) ON DELETE SET NULL,
    contact_id         bigint         REFERENCES app.contacts (id) ON DELETE RESTRICT,
    amount             numeric(15, 2) NOT NULL,
    received_on        date           NOT NULL,
    payment_method_id  bigint         REFERENCES app.payment_methods (id) ON DELETE RESTRICT,
    payment_method_name text,         -- for QBO-origin receipts
    reference          text,
    origin             text           NOT NULL DEFAULT 'source' CHECK (origin IN ('source', 'qbo')),
    qbo_realm_id       text,
    qbo_id             text,
    qbo_deleted        boolean        NOT NULL DEFAULT false,
    created_at         timestamptz    NOT NULL DEFAULT now(),
    updated_at         timestamptz    NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS receipts_qbo_uq ON app.receipts (qbo_realm_id, qbo_id)
    WHERE qbo_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS receipts_sale_idx ON app.receipts (sale_id);

CREATE TABLE IF NOT EXISTS app.workers (
    id           bigserial   PRIMARY KEY,
    given_name   text,
    family_name  text,
    trading_name text,
    email        text,
    phone        text,
    country      text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS app.worker_invoices (
    id          bigserial      PRIMARY KEY,
    worker_id   bigint         NOT NULL REFERENCES app.workers (id) ON DELETE RESTRICT,
    number      text,
    issued_on   date           NOT NULL,
    due_on      date,
    memo        text,
    total       numeric(15, 2) NOT NULL DEFAULT 0,
    created_at  timestamptz    NOT NULL DEFAULT now(),
    updated_at  timestamptz    NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS worker_invoices_worker_idx ON app.worker_invoices (worker_id);

CREATE TABLE IF NOT EXISTS app.worker_invoice_lines (
    id                 bigserial      PRIMARY KEY,
    worker_invoice_id  bigint         NOT NULL REFERENCES app.worker_invoices (id) ON DELETE CASCADE,
    line_no            integer        NOT NULL,
    concept            text           NOT NULL,
    description        text,
    amount             numeric(15, 2) NOT NULL DEFAULT 0,
    UNIQUE (worker_invoice_id, line_no)
);

-- Every QBO transaction of a contact, with a link that opens it in QBO (R26).
CREATE TABLE IF NOT EXISTS app.customer_transactions (
    id            bigserial      PRIMARY KEY,
    contact_id    bigint         REFERENCES app.contacts (id) ON DELETE SET NULL,
    qbo_realm_id  text           NOT NULL,
    txn_type      text           NOT NULL,
    qbo_id        text           NOT NULL,
    qbo_customer_id text,
    doc_number    text,
    txn_date      date,
    total         numeric(15, 2),
    balance       numeric(15, 2),
    status        text,
    qbo_url       text           NOT NULL,
    qbo_deleted   boolean        NOT NULL DEFAULT false,
    updated_at    timestamptz    NOT NULL DEFAULT now(),
    UNIQUE (qbo_realm_id, txn_type, qbo_id)
);
CREATE INDEX IF NOT EXISTS customer_transactions_contact_idx ON app.customer_transactions (contact_id);

-- updated_at maintenance: a row-level BEFORE UPDATE trigger on the main tables.
CREATE OR REPLACE FUNCTION app.touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW IS DISTINCT FROM OLD THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END $$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['organisations', 'contacts', 'products', 'tax_rates',
                             'payment_methods', 'sales', 'receipts', 'workers',
                             'worker_invoices', 'customer_transactions']
    LOOP
        -- (no format() here: migration scripts must not contain percent signs)
        EXECUTE 'DROP TRIGGER IF EXISTS touch_updated_at ON app.' || quote_ident(t);
        EXECUTE 'CREATE TRIGGER touch_updated_at BEFORE UPDATE ON app.' || quote_ident(t)
             || ' FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at()';
    END LOOP;
END $$;
