"""The entity catalogue of the sandbox: names, URL resources, kinds and queryable fields."""

from __future__ import annotations

from dataclasses import dataclass

from qbo_pipelines.sandbox.schema import SCHEMAS

COMMON = ("Id", "SyncToken", "MetaData.CreateTime", "MetaData.LastUpdatedTime", "domain", "sparse")
PERSON = ("DisplayName", "Title", "GivenName", "MiddleName", "FamilyName", "Suffix", "CompanyName",
          "PrintOnCheckName", "Active", "PrimaryEmailAddr", "PrimaryPhone", "Mobile", "Fax",
          "AlternatePhone", "WebAddr", "BillAddr", "ShipAddr", "Notes", "Balance", "CurrencyRef",
          "OtherAddr", "V4IDPseudonym")
SALES = ("DocNumber", "TxnDate", "CustomerRef", "TotalAmt", "Balance", "Line", "PrivateNote",
         "CustomerMemo", "BillEmail", "BillEmailCc", "BillEmailBcc", "BillAddr", "ShipAddr",
         "EmailStatus", "PrintStatus", "TxnTaxDetail", "CurrencyRef", "ExchangeRate",
         "ClassRef", "DepartmentRef", "SalesTermRef", "DepositToAccountRef",
         "PaymentMethodRef", "PaymentRefNum", "ApplyTaxAfterDiscount", "GlobalTaxCalculation",
         "CustomField", "LinkedTxn", "HomeTotalAmt", "HomeBalance", "ProjectRef", "ShipDate",
         "TrackingNum", "ShipMethodRef", "DeliveryInfo", "TxnSource", "RecurDataRef",
         "TaxExemptionRef", "FreeFormAddress", "ShipFromAddr", "TransactionLocationType")


@dataclass(frozen=True)
class Spec:
    """What the sandbox knows of one entity type."""

    name: str
    kind: str  # "name" (name list), "txn", "singleton", "readonly"
    fields: tuple[str, ...]
    name_field: str = ""
    void_style: str = ""  # "operation" (?operation=void), "include" (?include=void), "both"
    doc_numbers: bool = False
    cdc: bool = True

    @property
    def resource(self) -> str:
        return self.name.lower()

    @property
    def name_list(self) -> bool:
        return self.kind == "name" or self.name in ("TaxCode", "TaxRate")

    @property
    def deletable(self) -> bool:
        return self.kind == "txn"


def _fields(entity: str) -> tuple[str, ...]:
    """Queryable properties of the entities whose field list is their schema's."""
    return COMMON + tuple(k for k in SCHEMAS[entity] if k not in ("MetaData",) + COMMON)


_SPECS = (
    Spec("Customer", "name", COMMON + PERSON + (
        "FullyQualifiedName", "Job", "BillWithParent", "ParentRef", "Level", "BalanceWithJobs",
        "Taxable", "DefaultTaxCodeRef", "PreferredDeliveryMethod", "SalesTermRef",
        "PaymentMethodRef", "ResaleNum", "OpenBalanceDate", "CustomerTypeRef", "IsProject",
        "TaxExemptionReasonId", "ARAccountRef", "PrimaryTaxIdentifier", "SecondaryTaxIdentifier",
        "GSTIN", "BusinessNumber", "GSTRegistrationType", "ClientEntityId"),
     "DisplayName"),
    Spec("Vendor", "name", COMMON + PERSON + (
        "Vendor1099", "TaxIdentifier", "AcctNum", "BillRate", "CostRate", "TermRef",
        "APAccountRef", "GSTIN", "BusinessNumber", "GSTRegistrationType", "T4AEligible",
        "T5018Eligible", "HasTPAR", "TaxReportingBasis", "VendorPaymentBankDetail", "Source"),
     "DisplayName"),
    Spec("Employee", "name", COMMON + PERSON + (
        "SSN", "EmployeeNumber", "BillableTime", "BillRate", "CostRate", "BirthDate", "Gender",
        "HiredDate", "ReleasedDate", "Organization", "PrimaryAddr"), "DisplayName"),
    Spec("Item", "name", COMMON + (
        "Name", "Type", "Active", "Description", "UnitPrice", "IncomeAccountRef",
        "ExpenseAccountRef", "AssetAccountRef", "PurchaseDesc", "PurchaseCost", "Taxable",
        "SalesTaxIncluded", "PurchaseTaxIncluded", "SalesTaxCodeRef", "PurchaseTaxCodeRef", "Sku",
        "SubItem", "ParentRef", "Level", "FullyQualifiedName", "TrackQtyOnHand", "QtyOnHand",
        "InvStartDate", "ClassRef", "PrefVendorRef", "ReorderPoint", "AbatementRate",
        "ReverseChargeRate", "ServiceType", "ItemCategoryType"), "Name"),
    Spec("Account", "name", COMMON + (
        "Name", "AccountType", "AccountSubType", "AcctNum", "SubAccount", "ParentRef",
        "FullyQualifiedName", "Classification", "CurrentBalance",
        "CurrentBalanceWithSubAccounts", "Description", "CurrencyRef", "Active", "TaxCodeRef",
        "OpeningBalance", "OpeningBalanceDate"), "Name"),
    Spec("TaxCode", "readonly", COMMON + (
        "Name", "Description", "Active", "Taxable", "TaxGroup", "Hidden", "SalesTaxRateList",
        "PurchaseTaxRateList"), "Name", cdc=False),
    Spec("TaxRate", "readonly", COMMON + (
        "Name", "Description", "RateValue", "AgencyRef", "SpecialTaxType", "DisplayType",
        "EffectiveTaxRate", "TaxReturnLineRef", "Active"), "Name", cdc=False),
    Spec("PaymentMethod", "name", COMMON + ("Name", "Type", "Active"), "Name"),
    Spec("Term", "name", COMMON + (
        "Name", "Type", "Active", "DueDays", "DiscountPercent", "DiscountDays", "DayOfMonthDue",
        "DueNextMonthDays", "DiscountDayOfMonth"), "Name"),
    Spec("Invoice", "txn", COMMON + SALES + (
        "DueDate", "Deposit", "AllowOnlineCreditCardPayment", "AllowOnlineACHPayment",
        "AllowIPNPayment", "InvoiceLink"), void_style="operation", doc_numbers=True),
    Spec("Payment", "txn", COMMON + (
        "TxnDate", "CustomerRef", "TotalAmt", "UnappliedAmt", "Line", "DepositToAccountRef",
        "PaymentMethodRef", "PaymentRefNum", "PrivateNote", "CurrencyRef", "ExchangeRate",
        "ARAccountRef", "ProcessPayment", "CreditCardPayment", "TxnSource", "ProjectRef",
        "TxnStatus", "DocNumber"), void_style="include"),
    Spec("SalesReceipt", "txn", COMMON + SALES, void_style="include", doc_numbers=True),
    Spec("Estimate", "txn", COMMON + SALES + (
        "ExpirationDate", "AcceptedBy", "AcceptedDate", "TxnStatus", "DueDate"),
     doc_numbers=True),
    Spec("CreditMemo", "txn", COMMON + SALES + ("RemainingCredit",), void_style="both",
         doc_numbers=True),
    Spec("Bill", "txn", COMMON + (
        "DocNumber", "TxnDate", "DueDate", "VendorRef", "APAccountRef", "SalesTermRef",
        "TotalAmt", "Balance", "Line", "PrivateNote", "CurrencyRef", "ExchangeRate",
        "VendorAddr", "DepartmentRef", "LinkedTxn", "TxnTaxDetail", "GlobalTaxCalculation",
        "HomeBalance", "IncludeInAnnualTPAR"), doc_numbers=True),
    Spec("Class", "name", _fields("Class"), "Name"),
    Spec("Department", "name", _fields("Department"), "Name"),
    Spec("RefundReceipt", "txn", _fields("RefundReceipt"), void_style="include",
         doc_numbers=True),
    Spec("VendorCredit", "txn", _fields("VendorCredit")),
    Spec("PurchaseOrder", "txn", _fields("PurchaseOrder"), doc_numbers=True),
    Spec("Purchase", "txn", _fields("Purchase"), void_style="include"),
    Spec("BillPayment", "txn", _fields("BillPayment"), void_style="include"),
    Spec("JournalEntry", "txn", _fields("JournalEntry")),
    Spec("Deposit", "txn", _fields("Deposit")),
    Spec("Transfer", "txn", _fields("Transfer"), void_style="include"),
    # CDC does not cover TimeActivity (QBO_API.md §3).
    Spec("TimeActivity", "txn", _fields("TimeActivity"), cdc=False),
    Spec("Attachable", "txn", _fields("Attachable")),
    Spec("CompanyInfo", "singleton", COMMON + (
        "CompanyName", "LegalName", "CompanyAddr", "CustomerCommunicationAddr", "LegalAddr",
        "PrimaryPhone", "Email", "WebAddr", "CompanyStartDate", "FiscalYearStartMonth", "Country",
        "SupportedLanguages", "NameValue", "CustomerCommunicationEmailAddr"), cdc=False),
    Spec("Preferences", "singleton", COMMON + (
        "CurrencyPrefs", "SalesFormsPrefs", "AccountingInfoPrefs", "TaxPrefs",
        "ProductAndServicesPrefs", "VendorAndPurchasesPrefs", "TimeTrackingPrefs",
        "ReportPrefs", "EmailMessagesPrefs", "OtherPrefs")),
)

SPECS: dict[str, Spec] = {spec.name: spec for spec in _SPECS}
BY_RESOURCE: dict[str, Spec] = {spec.resource: spec for spec in _SPECS}
BY_LOWER: dict[str, Spec] = BY_RESOURCE

# Fields compared as numbers / dates / date-times / booleans in queries.
NUMERIC = {"Id", "SyncToken", "TotalAmt", "Balance", "UnitPrice", "QtyOnHand", "DueDays",
           "CurrentBalance", "RateValue", "UnappliedAmt", "Level", "PurchaseCost",
           "BalanceWithJobs", "HomeTotalAmt", "HomeBalance", "ExchangeRate", "Deposit",
           "Amount", "RemainingCredit", "HourlyRate", "Hours", "Minutes", "CostRate",
           "BillRate", "Size"}
DATES = {"TxnDate", "DueDate", "ShipDate", "ExpirationDate", "OpenBalanceDate",
         "InvStartDate", "CompanyStartDate", "HiredDate", "BirthDate", "ReleasedDate"}
DATETIMES = {"MetaData.CreateTime", "MetaData.LastUpdatedTime"}
BOOLEANS = {"Active", "Taxable", "Job", "BillWithParent", "Vendor1099", "SubAccount",
            "TrackQtyOnHand", "IsProject", "sparse", "Hidden", "TaxGroup", "SubItem",
            "SubClass", "SubDepartment", "Credit", "Adjustment", "Organization",
            "BillableTime"}
