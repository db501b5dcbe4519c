"""Shape validation from one schema per entity (gap 5 of issue 10).

QBO_API.md §7.3: unknown JSON properties and wrong JSON types answer 400, code 2010 "Request has
invalid or unsupported property" with the property named; over-long strings 2050; unknown
enumeration values 2170; missing required fields 2020. §11 gives the lengths and enumerations.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
from typing import Any

import pytest
import quickbooks.objects

from qbo_pipelines.sandbox import schema
from qbo_pipelines.sandbox.errors import QboFault

from .helpers import Api, fault_of


def _line(amount: float | str = 10) -> dict[str, Any]:
    return {"Amount": amount, "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": "2"}}}


def test_wrong_type_is_2010_naming_the_property(api: Api) -> None:
    """§7.3 2010: ``"Taxable": "yes"`` is refused, the property is named."""
    response = api.post("/customer", {"DisplayName": "Typed", "Taxable": "yes"})
    assert response.status_code == 400
    error = fault_of(response)
    assert error["code"] == "2010"
    assert error["Message"] == "Request has invalid or unsupported property"
    assert error["element"] == "Taxable"
    assert "Taxable" in error["Detail"]
    assert response.json()["Fault"]["type"] == "ValidationFault"


def test_unknown_property_is_2010_also_nested_and_in_lines(api: Api) -> None:
    """§7.3 2010: unknown properties at any depth are named with their path."""
    top = fault_of(api.post("/customer", {"DisplayName": "X", "Nickname": "x"}))
    assert (top["code"], top["element"]) == ("2010", "Nickname")
    nested = fault_of(api.post("/customer", {"DisplayName": "X",
                                             "BillAddr": {"Line1": "a", "Planet": "Mars"}}))
    assert (nested["code"], nested["element"]) == ("2010", "BillAddr.Planet")
    line = {**_line(), "SalesItemLineDetail": {"ItemRef": {"value": "2"}, "Colour": "red"}}
    in_line = fault_of(api.post("/invoice", {"CustomerRef": {"value": "1"}, "Line": [line]}))
    assert (in_line["code"], in_line["element"]) == ("2010", "Line.SalesItemLineDetail.Colour")


def test_object_where_a_string_is_expected_and_text_for_a_number(api: Api) -> None:
    """§7.3 2010 (bad JSON type): objects, arrays and non-numeric text are refused."""
    error = fault_of(api.post("/customer", {"DisplayName": {"value": "x"}}))
    assert (error["code"], error["element"]) == ("2010", "DisplayName")
    error = fault_of(api.post("/invoice", {"CustomerRef": {"value": "1"},
                                           "Line": [_line()], "Deposit": "lots"}))
    assert (error["code"], error["element"]) == ("2010", "Deposit")
    error = fault_of(api.post("/invoice", {"CustomerRef": "1", "Line": [_line()]}))
    assert (error["code"], error["element"]) == ("2010", "CustomerRef")


def test_numeric_strings_and_null_and_empty_values_are_accepted(api: Api) -> None:
    """§13.8: python-quickbooks sends Decimals as strings ("100.00"), QBO accepts them;
    §1.4: null/empty values are absent values."""
    invoice = api.create("Invoice", {"CustomerRef": {"value": "1"}, "PrivateNote": None,
                                     "DocNumber": "", "Line": [_line("12.50")]})
    assert invoice["TotalAmt"] == 12.5
    customer = api.create("Customer", {"DisplayName": "Bool Text", "Taxable": "true"})
    assert customer["Id"]


def test_lengths_2050_docnumber_and_names(api: Api) -> None:
    """§11.1/§11.4: DocNumber ≤ 21, Title ≤ 16, DisplayName ≤ 500 -> 2050 otherwise."""
    error = fault_of(api.post("/invoice", {"CustomerRef": {"value": "1"}, "Line": [_line()],
                                           "DocNumber": "X" * 22}))
    assert (error["code"], error["element"]) == ("2050", "DocNumber")
    error = fault_of(api.post("/customer", {"DisplayName": "Long title", "Title": "T" * 17}))
    assert (error["code"], error["element"]) == ("2050", "Title")
    error = fault_of(api.post("/customer", {"DisplayName": "D" * 501}))
    assert (error["code"], error["element"]) == ("2050", "DisplayName")
    error = fault_of(api.post("/item", {"Name": "N" * 101, "Type": "Service",
                                        "IncomeAccountRef": {"value": "6"}}))
    assert (error["code"], error["element"]) == ("2050", "Name")


def test_enumerations_2170(api: Api) -> None:
    """§11.4 EmailStatus/PrintStatus, §11.1 PreferredDeliveryMethod, §11.9 AccountType."""
    error = fault_of(api.post("/invoice", {"CustomerRef": {"value": "1"}, "Line": [_line()],
                                           "PrintStatus": "Maybe"}))
    assert (error["code"], error["element"]) == ("2170", "PrintStatus")
    error = fault_of(api.post("/customer", {"DisplayName": "E", "PreferredDeliveryMethod":
                                            "Pigeon"}))
    assert (error["code"], error["element"]) == ("2170", "PreferredDeliveryMethod")
    error = fault_of(api.post("/account", {"Name": "Odd", "AccountType": "Piggy Bank"}))
    assert (error["code"], error["element"]) == ("2170", "AccountType")
    error = fault_of(api.post("/invoice", {"CustomerRef": {"value": "1"}, "Line": [
        {"Amount": 1, "DetailType": "FancyLine"}]}))
    assert (error["code"], error["element"]) == ("2170", "Line.DetailType")


def test_required_fields_2020_on_create_not_on_sparse_update(api: Api) -> None:
    """§7.3 2020 with Detail "Required parameter X is missing in the request"."""
    error = fault_of(api.post("/bill", {"Line": [{"Amount": 5, "DetailType":
                                                  "AccountBasedExpenseLineDetail"}]}))
    assert error["code"] == "2020"
    assert error["Detail"] == "Required parameter VendorRef is missing in the request"
    error = fault_of(api.post("/transfer", {"FromAccountRef": {"value": "1"}, "Amount": 5}))
    assert error["Detail"] == "Required parameter ToAccountRef is missing in the request"
    invoice = api.create("Invoice", {"CustomerRef": {"value": "1"}, "Line": [_line()]})
    api.create("Invoice", {"Id": invoice["Id"], "SyncToken": "0", "sparse": True,
                           "PrivateNote": "only this"})


def test_batch_items_are_validated_alone(api: Api) -> None:
    """§4: items are independent; a 2010 fails its item only."""
    data = api.ok(api.post("/batch", {"BatchItemRequest": [
        {"bId": "1", "operation": "create", "Customer": {"DisplayName": "Batch ok"}},
        {"bId": "2", "operation": "create", "Customer": {"DisplayName": "Bad",
                                                          "Taxable": "yes"}}]}))
    by_id = {item["bId"]: item for item in data["BatchItemResponse"]}
    assert by_id["1"]["Customer"]["Id"]
    assert by_id["2"]["Fault"]["Error"][0]["code"] == "2010"


def _full(cls: type, depth: int = 0) -> object:
    """A python-quickbooks object with every nested object and line variant filled in."""
    obj = cls()
    for key, sub in getattr(obj, "class_dict", {}).items():
        if depth < 5:
            setattr(obj, key, _full(sub, depth + 1))
    for key, sub in getattr(obj, "list_dict", {}).items():
        if depth < 5:
            items = [_full(sub, depth + 1)]
            if key == "Line":
                items += [_full(c, depth + 1) for c in getattr(obj, "detail_dict", {}).values()]
            setattr(obj, key, items)
    return obj


def _python_quickbooks_classes() -> list[tuple[str, type]]:
    found = []
    for module_info in pkgutil.iter_modules(quickbooks.objects.__path__):
        module = importlib.import_module(f"quickbooks.objects.{module_info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            name = getattr(cls, "qbo_object_name", None)
            # DepositLine carries its parent's qbo_object_name: it is a line, not an entity.
            if (name in schema.SCHEMAS and cls.__module__ == module.__name__
                    and not cls.__name__.endswith("Line")):
                found.append((name, cls))
    return found


@pytest.mark.parametrize(("entity", "cls"), _python_quickbooks_classes(),
                         ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_schema_accepts_every_field_python_quickbooks_sends(entity: str, cls: type) -> None:
    """§7.3 strictness must not refuse what QBO accepts: every property python-quickbooks'
    object model can send (S1 objects/*.py) passes the entity's schema."""
    body = json.loads(_full(cls).to_json())  # type: ignore[attr-defined]
    try:
        schema.validate(entity, body, full=False)
    except QboFault as fault:  # pragma: no cover - the failure message is the point
        pytest.fail(f"{cls.__name__}: {fault.code} {fault.element} {fault.detail}")
