"""Mapping repository against real Postgres: validation vs raw_qbo, snapshot, cleanup (R1, R12,
R19, R21, R23, R24, R32)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from qbo_pipelines.mapping import repository
from qbo_pipelines.mapping.cli import check_report
from qbo_pipelines.mapping.model import MappingRefusedError, Missing, QboRef, suggest
from qbo_pipelines.source_app import demo
from qbo_pipelines.source_app.connector import SourceAppConnector
from qbo_pipelines.warehouse import migrations, raw_qbo


@pytest.fixture
def realm(warehouse_engine: sa.Engine) -> str:
    realm_id = f"r{uuid.uuid4().hex[:10]}"
    raw_qbo.upsert_objects(warehouse_engine, realm_id, "Account", [
        {"Id": "35", "Name": "Checking", "AccountType": "Bank", "Active": True},
        {"Id": "79", "Name": "Sales of Product Income", "AccountType": "Income", "Active": True},
        {"Id": "60", "Name": "Design work", "AccountType": "Expense", "Active": True},
    ])
    raw_qbo.upsert_objects(warehouse_engine, realm_id, "TaxCode", [
        {"Id": "2", "Name": "GST 10%", "Active": True},
        {"Id": "3", "Name": "Zero rated", "Active": True},
    ])
    raw_qbo.upsert_objects(warehouse_engine, realm_id, "Item", [
        {"Id": "5", "Name": "Consulting", "Type": "Service", "Active": True}])
    raw_qbo.upsert_objects(warehouse_engine, realm_id, "PaymentMethod", [
        {"Id": "1", "Name": "Cash", "Type": "NON_CREDIT_CARD", "Active": True}])
    return realm_id


def test_R21_deposit_account_must_be_bank_refused_with_reason(
    warehouse_engine: sa.Engine, realm: str,
) -> None:
    with pytest.raises(MappingRefusedError) as err:
        repository.set_payment_method(warehouse_engine, realm, "1", "Cash", None,
                                      "Sales of Product Income")
    assert "type Income, but a deposit account must be of type Bank" in str(err.value)
    with pytest.raises(MappingRefusedError, match="must be of type Bank"):
        repository.set_setting(warehouse_engine, realm, "default-deposit-account", "79")
    method, account = repository.set_payment_method(
        warehouse_engine, realm, "1", "Cash", "Cash", "Checking")
    assert (method, account) != (None, None)
    snap = repository.load_snapshot(warehouse_engine, realm)
    target = snap.deposit_for("1")
    assert not isinstance(target, Missing)
    assert target.deposit_account == QboRef("35", "Checking")


def test_R12_R24_mappings_round_trip_and_unknown_qbo_side_refused(
    warehouse_engine: sa.Engine, realm: str,
) -> None:
    with pytest.raises(MappingRefusedError, match="has no tax code 'VAT 20'"):
        repository.set_tax_rate(warehouse_engine, realm, "1", "GST 10%", "VAT 20")
    repository.set_tax_rate(warehouse_engine, realm, "1", "GST 10%", "GST 10%")
    repository.set_expense_concept(warehouse_engine, realm, "Design work", "60")
    with pytest.raises(MappingRefusedError, match="expense account must be of type"):
        repository.set_expense_concept(warehouse_engine, realm, "Bonus", "Checking")
    repository.set_setting(warehouse_engine, realm, "default-income-account", "79")
    repository.set_setting(warehouse_engine, realm, "debounce-seconds", "30")
    snap = repository.load_snapshot(warehouse_engine, realm)
    assert snap.tax_code_for("1") == QboRef("2", "GST 10%")
    assert snap.expense_account_for("Design work") == QboRef("60", "Design work")
    assert snap.settings.debounce_seconds == 30
    assert snap.settings.default_income_account == QboRef("79", "Sales of Product Income")
    assert snap.settings.pull_interval_hours == 12
    assert repository.unset(warehouse_engine, realm, "tax-rate", "1")
    assert isinstance(repository.load_snapshot(warehouse_engine, realm).tax_code_for("1"), Missing)
    deleted = repository.delete_company_mappings(warehouse_engine, realm)
    assert deleted["settings"] == 1
    assert deleted["expense_concepts"] == 1
    assert repository.load_snapshot(warehouse_engine, realm).settings.debounce_seconds == 120


def test_R32_suggest_and_check_over_the_demo_app(
    warehouse_engine: sa.Engine, realm: str, make_database: Callable[[str], sa.Engine],
) -> None:
    source = make_database("src_map")
    migrations.migrate_source_app(source)
    demo.seed(source, contacts=40, sales=60, seed_value=1)
    values = repository.source_values(SourceAppConnector(source).mapping_usage())
    snapshot = repository.load_snapshot(warehouse_engine, realm, values)
    found = suggest(values, repository.load_choices(warehouse_engine, realm), snapshot)
    assert {(s.kind, s.source_name) for s in found} >= {
        ("tax-rate", "GST 10%"), ("tax-rate", "Zero rated"), ("item", "Consulting"),
        ("payment-method", "Cash"), ("expense-concept", "Design work")}
    repository.apply_suggestions(warehouse_engine, realm, found)
    snapshot = repository.load_snapshot(warehouse_engine, realm, values)
    report = check_report(values, snapshot)
    luxury = [line for line in report if "Luxury 25%" in line]
    assert len(luxury) == 1
    assert luxury[0].startswith("tax rate 'Luxury 25%' has no QBO mapping; holds back ")
    assert "qbo-pipelines mappings set tax-rate 'Luxury 25%' <QBO tax code>" in luxury[0]
    assert not [line for line in report if "'GST 10%'" in line]
