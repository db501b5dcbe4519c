"""A realistic small company: chart of accounts, tax codes and rates, payment methods, terms,
items and customers, plus CompanyInfo and Preferences (home currency USD)."""

from __future__ import annotations

from qbo_pipelines.sandbox.entities import Books
from qbo_pipelines.sandbox.specs import SPECS
from qbo_pipelines.sandbox.state import Company, Obj

ACCOUNTS: list[Obj] = [
    {"Name": "Checking", "AccountType": "Bank", "AccountSubType": "Checking", "AcctNum": "1000"},
    {"Name": "Savings", "AccountType": "Bank", "AccountSubType": "Savings", "AcctNum": "1010"},
    {"Name": "Undeposited Funds", "AccountType": "Other Current Asset",
     "AccountSubType": "UndepositedFunds", "AcctNum": "1200"},
    {"Name": "Accounts Receivable (A/R)", "AccountType": "Accounts Receivable",
     "AccountSubType": "AccountsReceivable", "AcctNum": "1100"},
    {"Name": "Accounts Payable (A/P)", "AccountType": "Accounts Payable",
     "AccountSubType": "AccountsPayable", "AcctNum": "2000"},
    {"Name": "Services", "AccountType": "Income", "AccountSubType": "ServiceFeeIncome",
     "AcctNum": "4000"},
    {"Name": "Sales of Product Income", "AccountType": "Income",
     "AccountSubType": "SalesOfProductIncome", "AcctNum": "4010"},
    {"Name": "Cost of Goods Sold", "AccountType": "Cost of Goods Sold",
     "AccountSubType": "SuppliesMaterialsCogs", "AcctNum": "5000"},
    {"Name": "Contractors", "AccountType": "Expense", "AccountSubType": "CostOfLabor",
     "AcctNum": "6000"},
    {"Name": "Software", "AccountType": "Expense",
     "AccountSubType": "OfficeGeneralAdministrativeExpenses", "AcctNum": "6010"},
    {"Name": "Travel", "AccountType": "Expense", "AccountSubType": "Travel", "AcctNum": "6020"},
    {"Name": "Office Supplies", "AccountType": "Expense", "AccountSubType": "SuppliesMaterials",
     "AcctNum": "6030"},
    {"Name": "Advertising", "AccountType": "Expense", "AccountSubType": "AdvertisingPromotional",
     "AcctNum": "6040"},
    {"Name": "Opening Balance Equity", "AccountType": "Equity",
     "AccountSubType": "OpeningBalanceEquity", "AcctNum": "3000"},
    {"Name": "Sales Tax Payable", "AccountType": "Other Current Liability",
     "AccountSubType": "SalesTaxPayable", "AcctNum": "2100"},
    {"Name": "Visa Credit Card", "AccountType": "Credit Card", "AccountSubType": "CreditCard",
     "AcctNum": "2200"},
    {"Name": "Retained Earnings", "AccountType": "Equity",
     "AccountSubType": "RetainedEarnings", "AcctNum": "3100"},
    {"Name": "Discounts Given", "AccountType": "Income",
     "AccountSubType": "DiscountsRefundsGiven", "AcctNum": "4900"},
]
TAX_RATES: list[Obj] = [
    {"Name": "GST", "Description": "Goods and services tax 10%", "RateValue": 10,
     "SpecialTaxType": "NONE", "DisplayType": "ReadOnly"},
    {"Name": "VAT 20%", "Description": "Value added tax 20%", "RateValue": 20,
     "SpecialTaxType": "NONE", "DisplayType": "ReadOnly"},
    {"Name": "Exempt", "Description": "Exempt 0%", "RateValue": 0,
     "SpecialTaxType": "NONE", "DisplayType": "ReadOnly"},
]
PAYMENT_METHODS = [("Cash", "NON_CREDIT_CARD"), ("Check", "NON_CREDIT_CARD"),
                   ("Visa", "CREDIT_CARD"), ("MasterCard", "CREDIT_CARD"),
                   ("Direct Debit", "NON_CREDIT_CARD")]
TERMS = [("Due on receipt", 0), ("Net 15", 15), ("Net 30", 30)]
CUSTOMERS: list[Obj] = [
    {"DisplayName": "Amy's Bird Sanctuary", "GivenName": "Amy", "FamilyName": "Lauterbach",
     "CompanyName": "Amy's Bird Sanctuary", "PrimaryEmailAddr": {"Address": "Birds@Intuit.com"},
     "PrimaryPhone": {"FreeFormNumber": "(650) 555-3311"},
     "BillAddr": {"Line1": "4581 Finch St.", "City": "Bayshore", "CountrySubDivisionCode": "CA",
                  "PostalCode": "94326"}},
    {"DisplayName": "Bill's Windsurf Shop", "GivenName": "Bill", "FamilyName": "Lucchini",
     "CompanyName": "Bill's Windsurf Shop", "PrimaryEmailAddr": {"Address": "Surf@Intuit.com"}},
    {"DisplayName": "Cool Cars", "GivenName": "Grace", "FamilyName": "Pariente",
     "CompanyName": "Cool Cars", "PrimaryEmailAddr": {"Address": "Cool_Cars@intuit.com"}},
    {"DisplayName": "Diego Rodriguez", "GivenName": "Diego", "FamilyName": "Rodriguez",
     "PrimaryEmailAddr": {"Address": "Diego@Rodriguez.com"}},
]
VENDORS: list[Obj] = [
    {"DisplayName": "Books by Bessie", "CompanyName": "Books by Bessie",
     "PrimaryEmailAddr": {"Address": "Books@Intuit.com"}},
    {"DisplayName": "Hicks Hardware", "CompanyName": "Hicks Hardware"},
]


def company_info(company: Company) -> Obj:
    address = {"Line1": "123 Sierra Way", "City": "San Pablo", "CountrySubDivisionCode": "CA",
               "PostalCode": "87999", "Country": "USA"}
    return {"CompanyName": company.name, "LegalName": company.name, "CompanyAddr": address,
            "LegalAddr": address, "CustomerCommunicationAddr": address,
            "PrimaryPhone": {"FreeFormNumber": "4081234567"},
            "Email": {"Address": "noreply@quickbooks.com"},
            "CompanyStartDate": "2024-01-01", "FiscalYearStartMonth": "January",
            "Country": "US", "SupportedLanguages": "en",
            "NameValue": [{"Name": "NeoEnabled", "Value": "true"},
                          {"Name": "ItemCategoriesFeature", "Value": "true"},
                          {"Name": "OfferingSku", "Value": "QuickBooks Online Plus"}]}


def preferences() -> Obj:
    return {
        "CurrencyPrefs": {"MultiCurrencyEnabled": False,
                          "HomeCurrency": {"value": "USD"}},
        "SalesFormsPrefs": {"CustomTxnNumbers": False, "AllowShipping": False,
                            "AllowDiscount": True, "AllowDeposit": False,
                            "AutoApplyPayments": True, "AllowServiceDate": False,
                            "DefaultTerms": {"value": "3"}},
        "AccountingInfoPrefs": {"TrackDepartments": False, "ClassTrackingPerTxn": False,
                                "ClassTrackingPerTxnLine": False, "CustomerTerminology":
                                "Customers", "FirstMonthOfFiscalYear": "January"},
        "TaxPrefs": {"UsingSalesTax": True, "PartnerTaxEnabled": False},
        "ProductAndServicesPrefs": {"ForSales": True, "ForPurchase": True,
                                    "QuantityWithPriceAndRate": True, "QuantityOnHand": True},
        "VendorAndPurchasesPrefs": {"TrackingByCustomer": True, "BillableExpenseTracking": True},
        "EmailMessagesPrefs": {"InvoiceMessage": {"Subject": "Invoice from {company}",
                                                  "Message": "Please find your invoice."}},
        "OtherPrefs": {"NameValue": [{"Name": "SalesFormsPrefs.DefaultCustomerMessage",
                                      "Value": "Thank you for your business."}]},
    }


def seed_singletons(books: Books) -> None:
    books.store_raw(SPECS["CompanyInfo"], company_info(books.company))
    books.store_raw(SPECS["Preferences"], preferences())


def seed_company(books: Books) -> None:
    """Fill a company that has only CompanyInfo and Preferences."""
    accounts = {a["Name"]: books.create("Account", a)["Id"] for a in ACCOUNTS}
    rates = {r["Name"]: books.store_raw(SPECS["TaxRate"], {**r, "Active": True})["Id"]
             for r in TAX_RATES}
    for name, rate in (("GST", "GST"), ("VAT 20%", "VAT 20%"), ("Exempt", "Exempt")):
        detail = {"TaxRateRef": {"value": rates[rate], "name": rate},
                  "TaxTypeApplicable": "TaxOnAmount", "TaxOrder": 0}
        books.store_raw(SPECS["TaxCode"], {
            "Name": name, "Description": name, "Active": True, "Taxable": True,
            "TaxGroup": True, "Hidden": False,
            "SalesTaxRateList": {"TaxRateDetail": [detail]},
            "PurchaseTaxRateList": {"TaxRateDetail": []}})
    for name, taxable in (("TAX", True), ("NON", False)):
        # US pseudo tax codes: real QBO returns them from TaxCode queries with these Ids.
        books.store_raw(SPECS["TaxCode"], {"Name": name, "Description": name, "Active": True,
                                           "Taxable": taxable, "TaxGroup": False})
    for name, kind in PAYMENT_METHODS:
        books.create("PaymentMethod", {"Name": name, "Type": kind})
    for name, days in TERMS:
        books.create("Term", {"Name": name, "DueDays": days})
    _items(books, accounts)
    for customer in CUSTOMERS:
        books.create("Customer", customer)
    for vendor in VENDORS:
        books.create("Vendor", vendor)
    books.create("Employee", {"GivenName": "Emily", "FamilyName": "Platt",
                              "DisplayName": "Emily Platt"})
    for name in ("Consulting", "Retail"):
        books.create("Class", {"Name": name})
    for name in ("East", "West"):
        books.create("Department", {"Name": name})


def _items(books: Books, accounts: dict[str, str]) -> None:
    services = {"value": accounts["Services"]}
    product = {"value": accounts["Sales of Product Income"]}
    cogs = {"value": accounts["Cost of Goods Sold"]}
    books.create("Item", {"Name": "Services", "Type": "Service", "IncomeAccountRef": services,
                          "UnitPrice": 0})
    books.create("Item", {"Name": "Consulting", "Type": "Service", "UnitPrice": 150,
                          "Description": "Consulting hour", "IncomeAccountRef": services})
    books.create("Item", {"Name": "Installation", "Type": "Service", "UnitPrice": 50,
                          "IncomeAccountRef": services})
    books.create("Item", {"Name": "Widget", "Type": "NonInventory", "UnitPrice": 25,
                          "IncomeAccountRef": product, "ExpenseAccountRef": cogs,
                          "Sku": "WID-1"})
