-- A QBO Customer linked to an existing source contact (R7): update that contact's details and
-- record its QBO id. Organisation and billing-contact flags are the app's own and stay untouched.
UPDATE app.contacts SET
    given_name = :given_name,
    family_name = :family_name,
    email = :email,
    phone = :phone,
    address_line1 = :line1,
    address_line2 = :line2,
    city = :city,
    region = :region,
    postal_code = :postal_code,
    country = :country,
    qbo_realm_id = :realm_id,
    qbo_id = :qbo_id,
    qbo_display_name = :display_name,
    qbo_company_name = :company_name,
    qbo_active = :active
WHERE id = :source_id
