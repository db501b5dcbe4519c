"""An unmodified third-party client (python-quickbooks + intuitlib) pointed at the sandbox by
base URL only gets the behaviour and the exceptions it would get from QBO."""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta, timezone

import pytest
from intuitlib.client import AuthClient
from quickbooks import QuickBooks
from quickbooks.batch import batch_create
from quickbooks.cdc import change_data_capture
from quickbooks.exceptions import (
    ObjectNotFoundException,
    QuickbooksException,
    ValidationException,
)
from quickbooks.objects.base import Ref
from quickbooks.objects.customer import Customer
from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
from quickbooks.objects.invoice import Invoice
from quickbooks.objects.item import Item
from quickbooks.objects.payment import Payment, PaymentLine
from quickbooks.objects.vendor import Vendor

from qbo_pipelines.sandbox.testing import SandboxHandle


@pytest.fixture
def qb(sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch) -> QuickBooks:
    # requests-oauthlib refuses plain http unless told it is a local test setup.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    tokens = sandbox.control.mint_tokens(sandbox.realm_id)
    # intuitlib treats any non-keyword environment as the discovery URL (QBO_API.md §9.5).
    auth = AuthClient(sandbox.client_id, sandbox.client_secret, sandbox.redirect_uri,
                      environment=sandbox.discovery_url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = QuickBooks(auth_client=auth, refresh_token=tokens["refresh_token"],
                            company_id=sandbox.realm_id, minorversion=75)
    # python-quickbooks hard-codes its base URL: point it at the sandbox by base URL only.
    client.api_url_v3 = sandbox.base_url + "/v3"
    return client


def _invoice(qb: QuickBooks, customer_id: str, amount: float = 150.0) -> Invoice:
    line = SalesItemLine()
    line.Amount = amount
    line.SalesItemLineDetail = SalesItemLineDetail()
    item = Item.filter(Name="Consulting", qb=qb)[0]
    line.SalesItemLineDetail.ItemRef = item.to_ref()
    invoice = Invoice()
    invoice.Line = [line]
    invoice.CustomerRef = Ref()
    invoice.CustomerRef.value = customer_id
    return invoice.save(qb=qb)


def test_refresh_through_discovered_token_endpoint_rotates_refresh_token(
        sandbox: SandboxHandle, qb: QuickBooks) -> None:
    assert qb.auth_client.access_token
    assert qb.refresh_token != sandbox.control.mint_tokens(sandbox.realm_id)["refresh_token"]


def test_create_query_update_with_synctoken(qb: QuickBooks) -> None:
    customer = Customer()
    customer.DisplayName = "O'Brien Plumbing"
    customer = customer.save(qb=qb)
    assert customer.Id
    assert customer.SyncToken == "0"
    found = Customer.filter(DisplayName="O'Brien Plumbing", qb=qb)
    assert [c.Id for c in found] == [customer.Id]
    customer.CompanyName = "O'Brien Plumbing LLC"
    updated = customer.save(qb=qb)
    assert updated.SyncToken == "1"
    assert Customer.get(customer.Id, qb=qb).CompanyName == "O'Brien Plumbing LLC"
    assert Customer.count(qb=qb) == len(Customer.all(max_results=1000, qb=qb))


def test_stale_synctoken_raises_5010(qb: QuickBooks) -> None:
    customer = Customer()
    customer.DisplayName = "Racing Rita"
    customer = customer.save(qb=qb)
    fresh = Customer.get(customer.Id, qb=qb)
    fresh.Notes = "first"
    fresh.save(qb=qb)
    customer.Notes = "second"
    with pytest.raises(QuickbooksException) as info:
        customer.save(qb=qb)
    assert info.value.error_code == 5010


def test_duplicate_display_name_raises_6240(qb: QuickBooks) -> None:
    vendor = Vendor()
    vendor.DisplayName = "Twin Peaks"
    vendor.save(qb=qb)
    customer = Customer()
    customer.DisplayName = "Twin Peaks"
    with pytest.raises(QuickbooksException) as info:
        customer.save(qb=qb)
    assert info.value.error_code == 6240


def test_missing_object_raises_object_not_found_610(qb: QuickBooks) -> None:
    with pytest.raises(ObjectNotFoundException) as info:
        Customer.get("999999", qb=qb)
    assert info.value.error_code == 610


def test_query_faults_raise_validation_exception(qb: QuickBooks) -> None:
    with pytest.raises(ValidationException) as info:
        Customer.query("SELECT * FROM Customer WHERE DisplayName = 'a' OR Active = true", qb=qb)
    assert info.value.error_code in (4000, 4001)


def test_batch_create_and_cdc(qb: QuickBooks) -> None:
    # python-quickbooks sends changedSince without an offset; the sandbox reads it in the
    # company's zone (UTC-8 for the seeded company).
    since = datetime.now(timezone(timedelta(hours=-8))).replace(tzinfo=None) - timedelta(
        minutes=5)
    customers = []
    for n in range(35):
        customer = Customer()
        customer.DisplayName = f"Batch Customer {n}"
        customers.append(customer)
    result = batch_create(customers, qb=qb)
    assert len(result.successes) == 35
    assert not result.faults
    cdc = change_data_capture([Customer, Invoice], since, qb=qb)
    names = {c.DisplayName for c in cdc.Customer}
    assert {f"Batch Customer {n}" for n in range(35)} <= names


def test_batch_item_fault_is_reported_per_item(qb: QuickBooks) -> None:
    first, second = Customer(), Customer()
    first.DisplayName = second.DisplayName = "Same In Batch"
    existing = Customer()
    existing.DisplayName = "Same In Batch"
    existing.save(qb=qb)
    result = batch_create([first], qb=qb)
    assert len(result.faults) == 1
    assert result.faults[0].Error[0].code == "6240"


def test_invoice_payment_void_send_pdf(qb: QuickBooks) -> None:
    customer = Customer.filter(DisplayName="Cool Cars", qb=qb)[0]
    invoice = _invoice(qb, customer.Id, 150.0)
    assert invoice.TotalAmt == 150.0
    assert invoice.Line[-1].DetailType == "SubTotalLineDetail"
    payment = Payment()
    payment.TotalAmt = 100.0
    payment.CustomerRef = customer.to_ref()
    line = PaymentLine()
    line.Amount = 100.0
    line.LinkedTxn = [invoice.to_linked_txn()]
    payment.Line = [line]
    payment.save(qb=qb)
    paid = Invoice.get(invoice.Id, qb=qb)
    assert paid.Balance == 50.0
    assert [t.TxnType for t in paid.LinkedTxn] == ["Payment"]
    sent = paid.send(qb=qb, send_to="cars@example.com")
    assert sent["Invoice"]["EmailStatus"] == "EmailSent"
    assert paid.download_pdf(qb=qb).startswith(b"%PDF")
    other = _invoice(qb, customer.Id, 80.0)
    other.void(qb=qb)
    voided = Invoice.get(other.Id, qb=qb)
    assert voided.TotalAmt == 0
    assert voided.Balance == 0
    assert voided.PrivateNote.startswith("Voided")
