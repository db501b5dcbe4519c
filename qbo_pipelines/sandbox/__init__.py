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
``control_api``/``control``, ``server``, ``seed``.

Known fidelity gaps (things real QBO does that the sandbox does not, or does differently):

- Requests with no ``Accept`` header get JSON (QBO answers XML unless JSON is asked for);
  ``Accept: application/xml`` gets XML by a generic mapping of the JSON answer (amounts keep
  JSON's number form, e.g. ``150.0`` not ``150.00``); gateway 401/403 faults stay JSON.
- Unknown JSON properties are accepted and stored rather than refused with 2010; no schema
  validation of field types or lengths beyond a few (DocNumber length, name characters).
- Messages of codes QBO_API.md does not quote (2040, 2050, 2070, 2090, 2170, 6000-family details
  other than 5010/6140/6240/610) are plausible texts, not captured ones.
- Entities: only Customer, Vendor, Employee, Item, Account, TaxCode, TaxRate, PaymentMethod,
  Term, Invoice, Payment, SalesReceipt, Estimate, CreditMemo, Bill, CompanyInfo, Preferences.
  No BillPayment, JournalEntry, Class, Department, Attachable, reports, ``/upload``,
  ``/taxservice/taxcode`` (TaxCode/TaxRate are read-only; seed them via the control API).
- Payments link to Invoices only (not CreditMemo/JournalEntry); Customer.Balance and
  Account.CurrentBalance are not maintained from transactions; inactivating a customer with a
  balance does not create the balancing CreditMemo.
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
