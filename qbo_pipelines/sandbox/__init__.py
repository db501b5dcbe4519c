"""A local QuickBooks Online Accounting API v3 + OAuth 2.0 server for dev, demo and tests.

Plain library (no Dagster). Behaviour follows ``QBO_API.md`` fact for fact where it gives a URL,
field, code or message; where that document marks a fact UNCONFIRMED the sandbox takes the
stricter reading and says so in a comment next to the code.

Entry points:

- ``qbo_pipelines.sandbox.testing.run_sandbox()``: in-process server on a free 127.0.0.1 port.
- ``qbo_pipelines.sandbox.control.SandboxControl``: client of the ``/_sandbox/`` control API.
- ``qbo-pipelines sandbox --port N [--data-dir D]``: the CLI (``qbo_pipelines.sandbox.cli``).

QBO's limits (§8) are enforced by default (``throttle=False`` / ``--no-throttle`` /
``SandboxControl.set_throttle(False)`` to opt out). The control API needs the sandbox's control
token (``X-Sandbox-Token``; printed by the CLI, passed automatically by ``SandboxControl`` for
in-process sandboxes and by ``run_sandbox()``). With a data directory every committed change is
journaled (``journal``) and survives kill -9.

Layout: ``state`` (companies, tokens, persistence), ``specs`` (entity catalogue), ``entities``
(write rules), ``query`` (query language), ``cdc``, ``service`` (API routing, batch, requestid),
``oauth``, ``webhooks``, ``throttle``, ``faults`` (injection), ``journal`` (durability),
``xmlout`` (XML answers), ``app`` (Starlette),
``control_api``/``control``, ``server``, ``seed``, ``schema`` (one shape per entity),
``txns`` (round-two entity rules), ``ledger`` (postings and balances), ``reports``,
``bookkeeper`` (a simulated bookkeeper), ``demo_cli`` (``demo simulate --sandbox-url``).

Known fidelity gaps (things real QBO does that the sandbox does not, or does differently):

- Requests with no ``Accept`` header get JSON (QBO answers XML unless JSON is asked for);
  ``Accept: application/xml`` gets XML by a generic mapping of the JSON answer (amounts keep
  JSON's number form, e.g. ``150.0`` not ``150.00``); gateway 401/403 faults stay JSON.
- Validation (``schema``): the 2010 Detail texts imitate QBO's Jackson messages ("Unrecognized
  field ...", "Can not construct instance of java.lang.Boolean ..."), they are not captured
  ones; strings accept JSON numbers and numbers accept numeric strings (Jackson coerces both);
  some nested blocks are not checked (Preferences sub-blocks, RecurringInfo, credit-card charge
  info, group-line lines, TaxCode rate lists); minor-version gates are not applied.
- Messages of codes QBO_API.md does not quote (2040, 2050, 2070, 2090, 2170, 2300, 6000-family
  details other than 5010/6140/6240/6540/610) are plausible texts, not captured ones.
- Entities not modelled: CreditCardPayment, Budget, TaxAgency, CompanyCurrency, Currency,
  JournalCode, RecurringTransaction, CustomerType, ExchangeRate (CDC answers ``{}`` for these
  names; queries refuse them with 4001); no ``/upload`` (an Attachable is a note or file
  metadata without content) and no ``/taxservice/taxcode`` (TaxCode/TaxRate are read-only; seed
  them via the control API). Void is offered for Invoice, CreditMemo, Payment, SalesReceipt,
  RefundReceipt, BillPayment, Purchase and Transfer only.
- Links: payments apply to Invoices and CreditMemos, bill payments to Bills and VendorCredits
  (not JournalEntry/Expense/Check links); a Deposit takes whole Payments and SalesReceipts from
  Undeposited Funds (no partial deposits, no LinkedTxn added to the deposited payment); a
  BillPayment may leave part of its TotalAmt unapplied.
- Balances come from accrual postings: a customer's opening ``Balance`` on create and an
  account's ``OpeningBalance`` are not posted (the next transaction re-derives the balance);
  CurrentBalance is kept for balance sheet accounts only and sub-accounts do not roll up
  (CurrentBalanceWithSubAccounts = CurrentBalance); purchase tax, inventory quantities and
  COGS are not posted; inactivating a customer with a balance does not create the balancing
  CreditMemo.
- Reports: only ProfitAndLoss, BalanceSheet, AgedReceivables, CustomerBalance and
  GeneralLedger; Accrual only (``accounting_method=Cash`` is refused); ``summarize_column_by``
  (Total/Month/Quarter/Year) on ProfitAndLoss and BalanceSheet only; no ``date_macro``,
  customer/class/department filters or column selection; the fiscal year starts in January;
  AgedReceivables ages today's open balances of items dated up to ``report_date`` in fixed
  30-day buckets; the answer also carries the API's ``time`` key.
- Tax: a line's TaxCode rates are applied to the line amount (no discount-before-tax ordering,
  no Automated Sales Tax); TAX/NON are seeded as ordinary TaxCodes with those names and are
  accepted as line tax codes by value.
- Multicurrency is not modelled (everything is in the home currency, USD).
- userinfo is a stub; the id_token signing key lives for the process (tokens issued before a
  restart no longer verify).
- Merge operations, the 120 s query timeout, and the 413 page for oversized bodies are not
  reproduced. The 40 emails/day cap answers with a 6000 business-validation fault (QBO's wire
  error for it is undocumented). One webhook endpoint per company; a notification never mixes
  realms; webhook events not yet delivered are held in memory (a kill -9 loses them, not the
  writes, which are journaled when the sandbox has a data directory).
- requestid responses are remembered forever (QBO's retention window is undocumented).
- Query ordering without ORDERBY is by Id ascending; string comparison is case-insensitive.
"""
