"""One schema per entity: the properties QBO accepts, their JSON types, lengths, enumerations
and the fields required on create (QBO_API.md §7.3, §11).

A schema is a dict of property -> type, where a type is

- a scalar token: ``"str"``, ``"str:N"`` (max N characters), ``"num"``, ``"int"``, ``"bool"``,
  ``"date"``, ``"dt"`` (date-time), ``"any"`` (not checked);
- ``Enum(...)``: one of the listed strings (2170 otherwise);
- a dict: a nested object with its own schema;
- a one-element list ``[type]``: an array of that type.

``validate`` refuses unknown properties and wrong JSON types with 2010 naming the property (as
QBO's Jackson-based deserializer does), over-long strings with 2050, unknown enumeration values
with 2170 and (on create and full update) missing required fields with 2020. ``null`` and ``""``
are absent values, as QBO treats them. Numbers may be sent as numeric strings (python-quickbooks'
``DecimalEncoder`` does) and strings may be sent as numbers, as Jackson coerces both.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from qbo_pipelines.sandbox import errors

MSG_INVALID_PROPERTY = "Request has invalid or unsupported property"
MSG_LENGTH = "String length is either shorter or longer than supported by specification"


@dataclass(frozen=True)
class Enum:
    values: tuple[str, ...]

    def __init__(self, *values: str) -> None:
        object.__setattr__(self, "values", values)


Schema = dict[str, Any]

REF: Schema = {"value": "str", "name": "str", "type": "str"}
ADDR: Schema = {"Id": "str", "Line1": "str:500", "Line2": "str:500", "Line3": "str:500",
                "Line4": "str:500", "Line5": "str:500", "City": "str:255",
                "Country": "str:255", "CountryCode": "str", "County": "str",
                "CountrySubDivisionCode": "str:255", "PostalCode": "str:30",
                "PostalCodeSuffix": "str", "Lat": "str", "Long": "str", "Tag": "str",
                "Note": "str"}
EMAIL: Schema = {"Address": "str:100", "Default": "bool", "Tag": "str"}
PHONE: Schema = {"FreeFormNumber": "str:30", "DeviceType": "str", "CountryCode": "str",
                 "AreaCode": "str", "ExchangeCode": "str", "Extension": "str",
                 "Default": "bool", "Tag": "str"}
WEB: Schema = {"URI": "str:1000", "Default": "bool", "Tag": "str"}
META: Schema = {"CreateTime": "dt", "LastUpdatedTime": "dt", "LastModifiedByRef": REF,
                "CreatedByRef": REF}
MEMO: Schema = {"value": "str:1000"}
CUSTOM_FIELD: Schema = {"DefinitionId": "str", "Name": "str", "Type": "str",
                        "StringValue": "str", "BooleanValue": "bool", "DateValue": "date",
                        "NumberValue": "num"}
LINKED_TXN: Schema = {"TxnId": "str", "TxnType": "str", "TxnLineId": "str"}
MARKUP: Schema = {"PercentBased": "bool", "Value": "num", "Percent": "num",
                  "PriceLevelRef": REF, "MarkUpIncomeAccountRef": REF}
TAX_LINE: Schema = {
    "Id": "str", "LineNum": "int", "Description": "str", "Amount": "num", "DetailType": "str",
    "TaxLineDetail": {"PercentBased": "bool", "TaxPercent": "num", "NetAmountTaxable": "num",
                      "TaxRateRef": REF, "TaxInclusiveAmount": "num",
                      "OverrideDeltaAmount": "num"}}
TXN_TAX: Schema = {"TotalTax": "num", "TxnTaxCodeRef": REF, "TaxLine": [TAX_LINE]}
NAME_VALUE: Schema = {"Name": "str", "Value": "str"}
DELIVERY: Schema = {"DeliveryType": "str", "DeliveryTime": "dt", "DeliveryErrorType": "str"}
ATTACHABLE_REF: Schema = {"EntityRef": REF, "LineInfo": "str", "IncludeOnSend": "bool",
                          "Inactive": "bool", "NoRefOnly": "bool",
                          "CustomField": [CUSTOM_FIELD]}
CHECK_PAYMENT: Schema = {"BankAccountRef": REF, "PrintStatus": Enum(
    "NotSet", "NeedToPrint", "PrintComplete"), "PayeeAddr": ADDR, "CheckNum": "str",
    "Status": "str", "NameOnAcct": "str", "AcctNum": "str", "BankName": "str"}
CC_PAYMENT: Schema = {"CCAccountRef": REF}
CREDIT_CARD_PAYMENT: Schema = {"CreditChargeInfo": "any", "CreditChargeResponse": "any"}

COMMON: Schema = {"Id": "str", "SyncToken": "str", "domain": "str", "sparse": "bool",
                  "status": "str", "MetaData": META}

LINE_BASE: Schema = {"Id": "str", "LineNum": "int", "Description": "str:4000",
                     "Amount": "num", "LinkedTxn": [LINKED_TXN],
                     "CustomField": [CUSTOM_FIELD], "ProjectRef": REF, "TxnLineId": "str"}
SALES_ITEM_DETAIL: Schema = {
    "ItemRef": REF, "ClassRef": REF, "UnitPrice": "num", "RatePercent": "num",
    "PriceLevelRef": REF, "MarkupInfo": MARKUP, "Qty": "num", "UOMRef": "any",
    "ItemAccountRef": REF, "TaxCodeRef": REF, "ServiceDate": "date", "TaxInclusiveAmt": "num",
    "DiscountAmt": "num", "DiscountRate": "num", "TaxClassificationRef": REF}
DISCOUNT_DETAIL: Schema = {"DiscountAccountRef": REF, "DiscountPercent": "num",
                           "PercentBased": "bool", "ClassRef": REF, "TaxCodeRef": REF,
                           "Discount": "any", "DiscountRef": REF}
DESCRIPTION_DETAIL: Schema = {"ServiceDate": "date", "TaxCodeRef": REF}
SUBTOTAL_DETAIL: Schema = {"ItemRef": REF, "ServiceDate": "date"}
GROUP_DETAIL: Schema = {"GroupItemRef": REF, "Quantity": "num", "UOMRef": "any",
                        "Line": ["any"]}
ACCOUNT_EXPENSE_DETAIL: Schema = {
    "AccountRef": REF, "CustomerRef": REF, "ClassRef": REF, "TaxCodeRef": REF,
    "BillableStatus": Enum("Billable", "NotBillable", "HasBeenBilled"), "MarkupInfo": MARKUP,
    "TaxAmount": "num", "TaxInclusiveAmt": "num", "ProjectRef": REF}
ITEM_EXPENSE_DETAIL: Schema = {
    "ItemRef": REF, "CustomerRef": REF, "ClassRef": REF, "TaxCodeRef": REF, "Qty": "num",
    "UnitPrice": "num", "PriceLevelRef": REF, "MarkupInfo": MARKUP, "UOMRef": "any",
    "BillableStatus": Enum("Billable", "NotBillable", "HasBeenBilled"),
    "TaxInclusiveAmt": "num", "ItemAccountRef": REF}

SALES_LINE: Schema = {
    **LINE_BASE,
    "DetailType": Enum("SalesItemLineDetail", "SubTotalLineDetail", "DiscountLineDetail",
                       "DescriptionOnly", "GroupLineDetail"),
    "SalesItemLineDetail": SALES_ITEM_DETAIL, "DiscountLineDetail": DISCOUNT_DETAIL,
    "DescriptionLineDetail": DESCRIPTION_DETAIL, "SubTotalLineDetail": SUBTOTAL_DETAIL,
    # python-quickbooks' SubtotalLine spells the key this way.
    "SubtotalLineDetail": SUBTOTAL_DETAIL, "GroupLineDetail": GROUP_DETAIL}
EXPENSE_LINE: Schema = {
    **LINE_BASE,
    "DetailType": Enum("AccountBasedExpenseLineDetail", "ItemBasedExpenseLineDetail",
                       "TDSLineDetail"),
    "AccountBasedExpenseLineDetail": ACCOUNT_EXPENSE_DETAIL,
    "ItemBasedExpenseLineDetail": ITEM_EXPENSE_DETAIL, "TDSLineDetail": "any"}
JOURNAL_LINE: Schema = {
    **LINE_BASE,
    "DetailType": Enum("JournalEntryLineDetail", "DescriptionOnly"),
    "DescriptionLineDetail": DESCRIPTION_DETAIL,
    "JournalEntryLineDetail": {
        "PostingType": Enum("Debit", "Credit"), "AccountRef": REF,
        "Entity": {"Type": Enum("Customer", "Vendor", "Employee"), "EntityRef": REF},
        "ClassRef": REF, "DepartmentRef": REF, "TaxCodeRef": REF,
        "TaxApplicableOn": Enum("Sales", "Purchase"), "TaxAmount": "num",
        "BillableStatus": Enum("Billable", "NotBillable", "HasBeenBilled"),
        "JournalCodeRef": REF, "TaxInclusiveAmt": "num"}}
DEPOSIT_LINE: Schema = {
    **LINE_BASE,
    "DetailType": Enum("DepositLineDetail"),
    "DepositToAccountRef": REF,
    "DepositLineDetail": {"Entity": REF, "ClassRef": REF, "AccountRef": REF,
                          "PaymentMethodRef": REF, "CheckNum": "str", "TxnType": "str",
                          "TaxCodeRef": REF, "TaxApplicableOn": "str"}}
PAYMENT_LINE: Schema = {"Amount": "num", "LinkedTxn": [LINKED_TXN], "LineEx": "any",
                        "Id": "str", "LineNum": "int", "Description": "str"}
RECURRING: Schema = {"RecurringInfo": "any", "RecurDataRef": REF}

PERSON: Schema = {
    **COMMON, "DisplayName": "str:500", "Title": "str:16", "GivenName": "str:100",
    "MiddleName": "str:100", "FamilyName": "str:100", "Suffix": "str:16",
    "CompanyName": "str:100", "PrintOnCheckName": "str:110", "Active": "bool",
    "PrimaryEmailAddr": EMAIL, "PrimaryPhone": PHONE, "AlternatePhone": PHONE,
    "Mobile": PHONE, "Fax": PHONE, "WebAddr": WEB, "BillAddr": ADDR, "ShipAddr": ADDR,
    "OtherAddr": ADDR, "Notes": "str:2000", "Balance": "num", "CurrencyRef": REF,
    "V4IDPseudonym": "str", "OpenBalanceDate": "date", "Source": "str"}
SALES_FORM: Schema = {
    **COMMON, **RECURRING, "DocNumber": "str:21", "TxnDate": "date", "CustomerRef": REF,
    "TotalAmt": "num", "Balance": "num", "Line": [SALES_LINE], "PrivateNote": "str:4000",
    "CustomerMemo": MEMO, "BillEmail": EMAIL, "BillEmailCc": EMAIL, "BillEmailBcc": EMAIL,
    "BillAddr": ADDR, "ShipAddr": ADDR, "ShipFromAddr": ADDR,
    "EmailStatus": Enum("NotSet", "NeedToSend", "EmailSent"),
    "PrintStatus": Enum("NotSet", "NeedToPrint", "PrintComplete"),
    "TxnTaxDetail": TXN_TAX, "CurrencyRef": REF, "ExchangeRate": "num", "ClassRef": REF,
    "DepartmentRef": REF, "SalesTermRef": REF, "DepositToAccountRef": REF,
    "PaymentMethodRef": REF, "PaymentRefNum": "str:21", "ApplyTaxAfterDiscount": "bool",
    "GlobalTaxCalculation": Enum("TaxExcluded", "TaxInclusive", "NotApplicable"),
    "CustomField": [CUSTOM_FIELD], "LinkedTxn": [LINKED_TXN], "HomeTotalAmt": "num",
    "HomeBalance": "num", "ProjectRef": REF, "ShipDate": "date", "TrackingNum": "str:31",
    "ShipMethodRef": REF, "DeliveryInfo": DELIVERY, "TxnSource": "str",
    "TaxExemptionRef": REF, "FreeFormAddress": "bool", "TransactionLocationType": "str",
    "AttachableRef": "any", "TxnStatus": "str", "EInvoiceStatus": "str",
    "CreditCardPayment": CREDIT_CARD_PAYMENT}
PURCHASE_FORM: Schema = {
    **COMMON, **RECURRING, "DocNumber": "str:21", "TxnDate": "date", "PrivateNote": "str:4000",
    "TotalAmt": "num", "Line": [EXPENSE_LINE], "CurrencyRef": REF, "ExchangeRate": "num",
    "TxnTaxDetail": TXN_TAX, "DepartmentRef": REF,
    "GlobalTaxCalculation": Enum("TaxExcluded", "TaxInclusive", "NotApplicable"),
    "LinkedTxn": [LINKED_TXN], "HomeTotalAmt": "num", "TransactionLocationType": "str",
    "AttachableRef": "any", "TxnSource": "str", "CustomField": [CUSTOM_FIELD]}

SCHEMAS: dict[str, Schema] = {
    "Customer": {
        **PERSON, "FullyQualifiedName": "str", "Job": "bool", "BillWithParent": "bool",
        "ParentRef": REF, "Level": "int", "BalanceWithJobs": "num", "Taxable": "bool",
        "DefaultTaxCodeRef": REF, "PreferredDeliveryMethod": Enum("Print", "Email", "None"),
        "SalesTermRef": REF, "PaymentMethodRef": REF, "ResaleNum": "str:16",
        "CustomerTypeRef": REF, "IsProject": "bool", "TaxExemptionReasonId": "str",
        "ARAccountRef": REF, "PrimaryTaxIdentifier": "str", "SecondaryTaxIdentifier": "str",
        "GSTIN": "str", "BusinessNumber": "str", "GSTRegistrationType": "str",
        "ClientEntityId": "str"},
    "Vendor": {
        **PERSON, "Vendor1099": "bool", "TaxIdentifier": "str:20", "AcctNum": "str:100",
        "BillRate": "num", "CostRate": "num", "TermRef": REF, "APAccountRef": REF,
        "GSTIN": "str", "BusinessNumber": "str", "GSTRegistrationType": "str",
        "T4AEligible": "bool", "T5018Eligible": "bool", "HasTPAR": "bool",
        "TaxReportingBasis": "str", "VendorPaymentBankDetail": "any"},
    "Employee": {
        **PERSON, "SSN": "str:100", "EmployeeNumber": "str:100", "BillableTime": "bool",
        "BillRate": "num", "CostRate": "num", "BirthDate": "date", "Gender": Enum(
            "Male", "Female"), "HiredDate": "date", "ReleasedDate": "date",
        "Organization": "bool", "PrimaryAddr": ADDR, "EmailAddress": "any"},
    "Item": {
        **COMMON, "Name": "str:100", "Type": Enum(
            "Service", "NonInventory", "Inventory", "Category", "Group"),
        "Active": "bool", "Description": "str:4000", "UnitPrice": "num",
        "IncomeAccountRef": REF, "ExpenseAccountRef": REF, "AssetAccountRef": REF,
        "PurchaseDesc": "str:1000", "PurchaseCost": "num", "Taxable": "bool",
        "SalesTaxIncluded": "bool", "PurchaseTaxIncluded": "bool", "SalesTaxCodeRef": REF,
        "PurchaseTaxCodeRef": REF, "Sku": "str:100", "SubItem": "bool", "ParentRef": REF,
        "Level": "int", "FullyQualifiedName": "str", "TrackQtyOnHand": "bool",
        "QtyOnHand": "num", "InvStartDate": "date", "ClassRef": REF, "PrefVendorRef": REF,
        "ReorderPoint": "num", "AbatementRate": "num", "ReverseChargeRate": "num",
        "ServiceType": "str", "ItemCategoryType": "str", "UQCDisplayText": "str",
        "UQCId": "str", "TaxClassificationRef": REF, "Source": "str"},
    "Account": {
        **COMMON, "Name": "str:100", "AccountType": Enum(
            "Bank", "Other Current Asset", "Fixed Asset", "Other Asset",
            "Accounts Receivable", "Equity", "Expense", "Other Expense", "Cost of Goods Sold",
            "Accounts Payable", "Credit Card", "Long Term Liability",
            "Other Current Liability", "Income", "Other Income"),
        "AccountSubType": "str", "AcctNum": "str:7", "SubAccount": "bool",
        "ParentRef": REF, "FullyQualifiedName": "str", "Classification": "str",
        "CurrentBalance": "num", "CurrentBalanceWithSubAccounts": "num",
        "Description": "str:100", "CurrencyRef": REF, "Active": "bool", "TaxCodeRef": REF,
        "OpeningBalance": "num", "OpeningBalanceDate": "date", "TxnLocationType": "str",
        "AccountAlias": "str"},
    "TaxCode": {
        **COMMON, "Name": "str:100", "Description": "str", "Active": "bool",
        "Taxable": "bool", "TaxGroup": "bool", "Hidden": "bool",
        "SalesTaxRateList": "any", "PurchaseTaxRateList": "any"},
    "TaxRate": {
        **COMMON, "Name": "str:100", "Description": "str", "RateValue": "num",
        "AgencyRef": REF, "SpecialTaxType": "str", "DisplayType": "str",
        "EffectiveTaxRate": "any", "TaxReturnLineRef": REF, "Active": "bool"},
    "PaymentMethod": {**COMMON, "Name": "str:31", "Type": Enum(
        "CREDIT_CARD", "NON_CREDIT_CARD"), "Active": "bool"},
    "Term": {**COMMON, "Name": "str:31", "Type": Enum("STANDARD", "DATE_DRIVEN"),
             "Active": "bool", "DueDays": "int", "DiscountPercent": "num",
             "DiscountDays": "int", "DayOfMonthDue": "int", "DueNextMonthDays": "int",
             "DiscountDayOfMonth": "int"},
    "Class": {**COMMON, "Name": "str:100", "SubClass": "bool", "ParentRef": REF,
              "FullyQualifiedName": "str", "Active": "bool"},
    "Department": {**COMMON, "Name": "str:100", "SubDepartment": "bool", "ParentRef": REF,
                   "FullyQualifiedName": "str", "Active": "bool"},
    "Invoice": {**SALES_FORM, "DueDate": "date", "Deposit": "num",
                "AllowOnlineCreditCardPayment": "bool", "AllowOnlineACHPayment": "bool",
                "AllowIPNPayment": "bool", "AllowOnlinePayment": "bool",
                "InvoiceLink": "str"},
    "SalesReceipt": dict(SALES_FORM),
    "Estimate": {**SALES_FORM, "ExpirationDate": "date", "AcceptedBy": "str",
                 "AcceptedDate": "date", "DueDate": "date"},
    "CreditMemo": {**SALES_FORM, "RemainingCredit": "num"},
    "RefundReceipt": {**SALES_FORM, "CheckPayment": CHECK_PAYMENT, "PaymentType": Enum(
        "Cash", "Check", "CreditCard"), "CheckNum": "str", "AcctNum": "str",
        "BankName": "str", "NameOnAcct": "str", "Status": "str"},
    "Payment": {
        **COMMON, "TxnDate": "date", "CustomerRef": REF, "TotalAmt": "num",
        "UnappliedAmt": "num", "Line": [PAYMENT_LINE], "DepositToAccountRef": REF,
        "PaymentMethodRef": REF, "PaymentRefNum": "str:21", "PrivateNote": "str:4000",
        "CurrencyRef": REF, "ExchangeRate": "num", "ARAccountRef": REF,
        "ProcessPayment": "bool", "CreditCardPayment": CREDIT_CARD_PAYMENT,
        "TxnSource": "str", "ProjectRef": REF, "TxnStatus": "str", "DocNumber": "str:21",
        "TaxExemptionRef": REF, "TransactionLocationType": "str", "LinkedTxn": [LINKED_TXN],
        "HomeTotalAmt": "num"},
    "Bill": {**PURCHASE_FORM, "DueDate": "date", "VendorRef": REF, "APAccountRef": REF,
             "SalesTermRef": REF, "Balance": "num", "VendorAddr": ADDR, "HomeBalance": "num",
             "IncludeInAnnualTPAR": "bool"},
    "VendorCredit": {**PURCHASE_FORM, "VendorRef": REF, "APAccountRef": REF,
                     "Balance": "num", "VendorAddr": ADDR, "IncludeInAnnualTPAR": "bool"},
    "PurchaseOrder": {**PURCHASE_FORM, "DueDate": "date", "VendorRef": REF,
                      "APAccountRef": REF, "POStatus": Enum("Open", "Closed"),
                      "POEmail": EMAIL, "EmailStatus": Enum(
                          "NotSet", "NeedToSend", "EmailSent"),
                      "VendorAddr": ADDR, "ShipAddr": ADDR, "ShipMethodRef": REF,
                      "ShipTo": REF, "SalesTermRef": REF, "ClassRef": REF,
                      "Memo": "str:4000", "TaxCodeRef": REF, "PrintStatus": Enum(
                          "NotSet", "NeedToPrint", "PrintComplete")},
    "Purchase": {**PURCHASE_FORM, "AccountRef": REF, "PaymentType": Enum(
        "Cash", "Check", "CreditCard"), "EntityRef": REF, "Credit": "bool",
        "RemitToAddr": ADDR, "PrintStatus": Enum("NotSet", "NeedToPrint", "PrintComplete"),
        "PaymentMethodRef": REF, "PurchaseEx": "any", "IncludeInAnnualTPAR": "bool"},
    "BillPayment": {
        **COMMON, "VendorRef": REF, "PayType": Enum("Check", "CreditCard"), "TotalAmt": "num",
        "Line": [PAYMENT_LINE], "CheckPayment": CHECK_PAYMENT,
        "CreditCardPayment": CC_PAYMENT, "APAccountRef": REF, "DocNumber": "str:21",
        "TxnDate": "date", "PrivateNote": "str:4000", "CurrencyRef": REF,
        "ExchangeRate": "num", "DepartmentRef": REF, "ProcessBillPayment": "bool",
        "TransactionLocationType": "str", "AttachableRef": "any", "LinkedTxn": [LINKED_TXN]},
    "JournalEntry": {
        **COMMON, **RECURRING, "DocNumber": "str:21", "TxnDate": "date",
        "PrivateNote": "str:4000", "Line": [JOURNAL_LINE], "Adjustment": "bool",
        "TotalAmt": "num", "HomeTotalAmt": "num", "CurrencyRef": REF, "ExchangeRate": "num",
        "TxnTaxDetail": TXN_TAX, "TaxRateRef": REF, "JournalCodeRef": REF,
        "GlobalTaxCalculation": Enum("TaxExcluded", "TaxInclusive", "NotApplicable"),
        "TransactionLocationType": "str", "AttachableRef": "any", "TxnSource": "str"},
    "Deposit": {
        **COMMON, **RECURRING, "DepositToAccountRef": REF, "Line": [DEPOSIT_LINE],
        "TxnDate": "date", "DocNumber": "str:21", "PrivateNote": "str:4000",
        "TotalAmt": "num", "HomeTotalAmt": "num", "CurrencyRef": REF, "ExchangeRate": "num",
        "DepartmentRef": REF, "CashBack": {"AccountRef": REF, "Amount": "num",
                                           "Memo": "str:4000"},
        "TxnTaxDetail": TXN_TAX, "GlobalTaxCalculation": Enum(
            "TaxExcluded", "TaxInclusive", "NotApplicable"), "TxnStatus": "str",
        "TxnSource": "str", "TransactionLocationType": "str", "AttachableRef": "any"},
    "Transfer": {
        **COMMON, **RECURRING, "FromAccountRef": REF, "ToAccountRef": REF, "Amount": "num",
        "TxnDate": "date", "PrivateNote": "str:4000", "CurrencyRef": REF,
        "ExchangeRate": "num", "TxnSource": "str", "TransactionLocationType": "str"},
    "TimeActivity": {
        **COMMON, "NameOf": Enum("Employee", "Vendor"), "EmployeeRef": REF, "VendorRef": REF,
        "CustomerRef": REF, "ItemRef": REF, "ClassRef": REF, "DepartmentRef": REF,
        "PayrollItemRef": REF, "ProjectRef": REF, "TxnDate": "date",
        "BillableStatus": Enum("Billable", "NotBillable", "HasBeenBilled"),
        "Taxable": "bool", "HourlyRate": "num", "CostRate": "num", "Hours": "int",
        "Minutes": "int", "Seconds": "int", "BreakHours": "int", "BreakMinutes": "int",
        "BreakSeconds": "int", "StartTime": "dt", "EndTime": "dt", "Description": "str:4000",
        "TimeZone": "str", "TransactionLocationType": "str", "AttachableRef": "any"},
    "Attachable": {
        **COMMON, "FileName": "str:1000", "Note": "str:2000", "Category": "str",
        "ContentType": "str", "PlaceName": "str", "AttachableRef": [ATTACHABLE_REF],
        "Long": "str", "Tag": "str", "Lat": "str", "FileAccessUri": "str",
        "Size": "num", "ThumbnailFileAccessUri": "str", "TempDownloadUri": "str",
        "ThumbnailTempDownloadUri": "str", "EntityRef": REF},
    "CompanyInfo": {
        **COMMON, "CompanyName": "str:1024", "LegalName": "str:1024", "CompanyAddr": ADDR,
        "CustomerCommunicationAddr": ADDR, "LegalAddr": ADDR, "PrimaryPhone": PHONE,
        "Email": EMAIL, "WebAddr": WEB, "CompanyStartDate": "date",
        "FiscalYearStartMonth": "str", "Country": "str", "SupportedLanguages": "str",
        "NameValue": [NAME_VALUE], "CustomerCommunicationEmailAddr": EMAIL,
        "DefaultTimeZone": "str", "EmployerId": "str", "OtherContactInfo": "any"},
    "Preferences": {
        **COMMON, "CurrencyPrefs": "any", "SalesFormsPrefs": "any",
        "AccountingInfoPrefs": "any", "TaxPrefs": "any", "ProductAndServicesPrefs": "any",
        "VendorAndPurchasesPrefs": "any", "TimeTrackingPrefs": "any", "ReportPrefs": "any",
        "EmailMessagesPrefs": "any", "OtherPrefs": "any"},
}

# Required on create (and full update): other "one of" rules (Customer names 6080, Account
# type 6010, Item accounts) stay in the entity rules with their own codes.
REQUIRED: dict[str, tuple[str, ...]] = {
    "Item": ("Name",), "Account": ("Name",), "PaymentMethod": ("Name",), "Term": ("Name",),
    "Class": ("Name",), "Department": ("Name",),
    "Invoice": ("CustomerRef", "Line"), "Estimate": ("CustomerRef", "Line"),
    "CreditMemo": ("CustomerRef", "Line"), "SalesReceipt": ("CustomerRef", "Line"),
    "RefundReceipt": ("Line", "DepositToAccountRef"),
    "Payment": ("TotalAmt", "CustomerRef"), "Bill": ("VendorRef", "Line"),
    "VendorCredit": ("VendorRef", "Line"), "PurchaseOrder": ("VendorRef", "Line"),
    "Purchase": ("AccountRef", "PaymentType", "Line"),
    "BillPayment": ("VendorRef", "PayType", "TotalAmt"),
    "JournalEntry": ("Line",), "Deposit": ("DepositToAccountRef", "Line"),
    "Transfer": ("FromAccountRef", "ToAccountRef", "Amount"),
    "TimeActivity": ("NameOf",),
}


def _invalid(path: str, detail: str) -> errors.QboFault:
    return errors.QboFault("2010", MSG_INVALID_PROPERTY,
                           f"Property Name:{detail} specified is unsupported or invalid", path)


def _absent(value: Any) -> bool:
    return value is None or value == ""


def _check(entity: str, schema: Any, value: Any, path: str) -> None:
    if _absent(value) or schema == "any":
        return
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise _invalid(path, f"Can not deserialize {path} from a JSON "
                                 f"{type(value).__name__} (an object is expected)")
        for key, item in value.items():
            sub = f"{path}.{key}" if path else key
            if key not in schema:
                raise _invalid(sub, f'Unrecognized field "{key}" (class '
                                    f"com.intuit.schema.finance.v3.{entity}), not marked as "
                                    "ignorable")
            _check(entity, schema[key], item, sub)
        return
    if isinstance(schema, list):
        if not isinstance(value, list):
            raise _invalid(path, f"Can not deserialize {path} from a JSON "
                                 f"{type(value).__name__} (an array is expected)")
        for item in value:
            _check(entity, schema[0], item, path)
        return
    if isinstance(schema, Enum):
        if not isinstance(value, str):
            raise _invalid(path, f"{path} must be one of {', '.join(schema.values)}")
        if value not in schema.values:
            raise errors.QboFault("2170", "Invalid Enumeration",
                                  f"Invalid Enumeration : {value} for {path}", path)
        return
    _scalar(str(schema), value, path)


def _scalar(kind: str, value: Any, path: str) -> None:
    base, _, limit = kind.partition(":")
    if isinstance(value, (dict, list)):
        raise _invalid(path, f"Can not deserialize {path} ({base}) from a JSON "
                             f"{type(value).__name__}")
    if base == "str":
        if isinstance(value, bool):
            raise _invalid(path, f"Can not deserialize {path} (a string) from a boolean")
        if limit and len(str(value)) > int(limit):
            raise errors.QboFault(
                "2050", MSG_LENGTH, "String length specified does not match the supported "
                f"length. Min:0 Max:{limit} supplied length:{len(str(value))}", path)
    elif base in ("num", "int"):
        if isinstance(value, bool):
            raise _invalid(path, f"Can not deserialize {path} (a number) from a boolean")
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise _invalid(path, f"Can not construct instance of java.math.BigDecimal from "
                                 f"String value '{value}' for {path}: not a valid "
                                 "representation") from None
        if not number.is_finite() or (base == "int" and number != number.to_integral_value()):
            raise _invalid(path, f"{path} value '{value}' is not a valid {base}")
    elif base == "bool":
        if not isinstance(value, bool) and str(value).lower() not in ("true", "false"):
            raise _invalid(path, f"Can not construct instance of java.lang.Boolean from "
                                 f"String value '{value}' for {path}: only \"true\" or "
                                 '"false" recognized')
    elif base in ("date", "dt"):
        text = str(value)
        if isinstance(value, bool) or len(text) < 10 or not _looks_like_date(text[:10]):
            raise errors.QboFault("2070", "Invalid Date", f"Invalid Date : {path} {text}",
                                  path)


def _looks_like_date(text: str) -> bool:
    parts = text.split("-")
    return (len(parts) == 3 and all(p.isdigit() for p in parts)
            and [len(p) for p in parts] == [4, 2, 2])


def validate(entity: str, body: dict[str, Any], *, full: bool) -> None:
    """Refuse what QBO refuses (2010/2050/2070/2170/2020). ``full``: create or full update."""
    schema = SCHEMAS.get(entity)
    if schema is None:
        return
    _check(entity, schema, body, "")
    if full:
        for key in REQUIRED.get(entity, ()):
            if _absent(body.get(key)) or body.get(key) == []:
                raise errors.required(key)
