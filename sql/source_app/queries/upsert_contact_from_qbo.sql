-- A QBO Customer not yet linked to a source contact: insert it as a QBO-origin contact, or update
-- the one pulled before (keyed on realm + QBO id). Run as executemany inside a transaction marked
-- with mark_sync_origin.sql.
INSERT INTO app.contacts (
    given_name, family_name, email, phone, address_line1, address_line2, city, region,
    postal_code, country, origin, qbo_realm_id, qbo_id, qbo_display_name, qbo_company_name,
    qbo_active)
VALUES (
    :given_name, :family_name, :email, :phone, :line1, :line2, :city, :region,
    :postal_code, :country, 'qbo', :realm_id, :qbo_id, :display_name, :company_name, :active)
ON CONFLICT (qbo_realm_id, qbo_id) WHERE qbo_id IS NOT NULL DO UPDATE SET
    given_name = EXCLUDED.given_name,
    family_name = EXCLUDED.family_name,
    email = EXCLUDED.email,
    phone = EXCLUDED.phone,
    address_line1 = EXCLUDED.address_line1,
    address_line2 = EXCLUDED.address_line2,
    city = EXCLUDED.city,
    region = EXCLUDED.region,
    postal_code = EXCLUDED.postal_code,
    country = EXCLUDED.country,
    qbo_display_name = EXCLUDED.qbo_display_name,
    qbo_company_name = EXCLUDED.qbo_company_name,
    qbo_active = EXCLUDED.qbo_active
