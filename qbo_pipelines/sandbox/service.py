"""The QBO API behind the HTTP layer: routing of ``/v3/company/{realm}/...`` paths, requestid
replay, batch, CDC, send and PDF. Runs in a worker thread; mutation happens under the store lock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from qbo_pipelines.sandbox import cdc, errors, query, reports
from qbo_pipelines.sandbox.clock import fmt_millis, fmt_seconds
from qbo_pipelines.sandbox.entities import Books, Change, clean
from qbo_pipelines.sandbox.pdf import render_pdf
from qbo_pipelines.sandbox.specs import BY_RESOURCE, SPECS, Spec
from qbo_pipelines.sandbox.state import Company, Obj, Store

MAX_BATCH = 30
SENDABLE = ("Invoice", "Estimate", "SalesReceipt", "CreditMemo", "Payment")
REQUEST_ID_MAX = 50


@dataclass
class ApiRequest:
    realm: str
    method: str
    path: str  # after /v3/company/{realm}, e.g. "/query" or "/invoice/12"
    params: dict[str, str]
    body: bytes = b""
    content_type: str = ""


@dataclass
class ApiResult:
    status: int
    body: bytes
    media_type: str = "application/json;charset=UTF-8"
    committed: bool = False


@dataclass
class Route:
    label: str
    write: bool
    run: Callable[[Company, ApiRequest, Books], Obj | bytes]


def classify(method: str, path: str, params: dict[str, str], body: bytes = b"") -> str:
    """The endpoint label used by the request log (e.g. ``create:Customer``)."""
    try:
        label = _route(method, path, params).label
    except errors.QboFault:
        return "unknown"
    if label.startswith("write:"):
        try:
            data = json.loads(body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = {}
        has_id = isinstance(data, dict) and data.get("Id") not in (None, "")
        label = ("update:" if has_id else "create:") + label[6:]
    return label


def _route(method: str, path: str, params: dict[str, str]) -> Route:
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise errors.unsupported("Operation is not supported.")
    head = parts[0].lower()
    if head == "query":
        return Route("query", False, _run_query)
    if head == "cdc" and method == "GET":
        return Route("cdc", False, _run_cdc)
    if head == "batch" and method == "POST":
        return Route("batch", True, _run_batch)
    if head == "reports" and method == "GET" and len(parts) == 2:
        return Route(f"report:{parts[1]}", False,
                     lambda c, r, b: reports.run(c, parts[1], r.params, b.epoch))
    if head == "companyinfo":
        return _singleton_route("CompanyInfo", method, parts)
    if head == "preferences":
        return _singleton_route("Preferences", method, parts)
    spec = BY_RESOURCE.get(head)
    if spec is None or spec.kind == "singleton":
        raise errors.unsupported(f"Operation No resource method found for {method} {path} is "
                                 "not supported.")
    return _entity_route(spec, method, parts, params)


def _singleton_route(name: str, method: str, parts: list[str]) -> Route:
    if method == "GET":
        return Route(f"read:{name}", False, lambda c, r, b: {name: b.read(name, "1")})
    return Route(f"update:{name}", True,
                 lambda c, r, b: {name: b.update(name, {**_json(r), "Id": "1"})})


def _entity_route(spec: Spec, method: str, parts: list[str], params: dict[str, str]) -> Route:
    name = spec.name
    if method == "GET" and len(parts) == 2:
        return Route(f"read:{name}", False, lambda c, r, b: {name: b.read(name, parts[1])})
    if method == "GET" and len(parts) == 3 and parts[2] == "pdf":
        return Route(f"pdf:{name}", False, lambda c, r, b: _pdf(c, b, name, parts[1]))
    if method == "POST" and len(parts) == 3 and parts[2] == "send" and name in SENDABLE:
        return Route(f"send:{name}", True, lambda c, r, b: _send(c, r, b, name, parts[1]))
    if method != "POST" or len(parts) != 1:
        raise errors.unsupported(f"Operation {method} {'/'.join(parts)} is not supported.")
    operation = params.get("operation", "").lower()
    include = params.get("include", "").lower()
    if operation == "delete":
        return Route(f"delete:{name}", True, lambda c, r, b: {name: b.delete(name, _json(r))})
    if operation == "void" or (operation in ("update", "") and "void" in include.split(",")):
        if operation == "void" and spec.void_style == "include":
            raise errors.unsupported(f"Operation void is not supported for {name}; use "
                                     "operation=update&include=void.")
        return Route(f"void:{name}", True, lambda c, r, b: {name: b.void(name, _json(r))})
    if operation not in ("", "create", "update"):
        raise errors.unsupported(f"Operation {operation} is not supported.")
    return Route(f"write:{name}", True, lambda c, r, b: {name: _write(b, name, _json(r))})


def _write(books: Books, name: str, body: Obj) -> Obj:
    if body.get("Id") not in (None, ""):
        return books.update(name, body)
    return books.create(name, body)


def _json(req: ApiRequest) -> Obj:
    try:
        data = json.loads(req.body.decode("utf-8") or "{}")
    except UnicodeDecodeError as exc:
        raise errors.unsupported("MalformedByteSequenceException: Invalid UTF-8 in the "
                                 "request body") from exc
    except json.JSONDecodeError as exc:
        raise errors.QboFault("2010", "Request has invalid or unsupported property",
                              f"Request body is not valid JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise errors.QboFault("2010", "Request has invalid or unsupported property",
                              "Request body must be a JSON object")
    return data


def _run_query(company: Company, req: ApiRequest, books: Books) -> Obj:
    text = req.params.get("query", "")
    if req.method == "POST" and not text:
        text = req.body.decode("utf-8", errors="replace")
    if not text.strip():
        raise errors.required("query")
    return {"QueryResponse": query.execute(company, text)}


def _run_cdc(company: Company, req: ApiRequest, books: Books) -> Obj:
    result = cdc.changes(company, req.params.get("entities", ""),
                         req.params.get("changedSince", ""), books.epoch)
    return {"CDCResponse": [{"QueryResponse": result}]}


def _run_batch(company: Company, req: ApiRequest, books: Books) -> Obj:
    items = _json(req).get("BatchItemRequest")
    if not isinstance(items, list) or not items:
        raise errors.required("BatchItemRequest")
    if len(items) > MAX_BATCH:
        raise errors.QboFault("1040", "Batch size exceeds allowed limit",
                              f"Batch size {len(items)} exceeds the limit of {MAX_BATCH}")
    seen: set[str] = set()
    out = []
    request_id = req.params.get("requestid", "")
    for item in items:
        bid = str(item.get("bId", "")) if isinstance(item, dict) else ""
        try:
            if not bid:
                raise errors.required("bId")
            if bid in seen:
                raise errors.business(f"Duplicate bId {bid} in the batch request.")
            seen.add(bid)
            if request_id and len(request_id) + len(bid) > REQUEST_ID_MAX:
                raise errors.business(
                    "You cannot enter more than 50 characters in the request_id field, which "
                    f"is {len(request_id) + len(bid)} characters.")
            out.append({"bId": bid, **_batch_item(company, books, item)})
        except errors.QboFault as fault:
            out.append({"bId": bid, "Fault": fault.fault_json()})
    return {"BatchItemResponse": out}


def _batch_item(company: Company, books: Books, item: Obj) -> Obj:
    if "Query" in item:
        return {"QueryResponse": query.execute(company, str(item["Query"]))}
    keys = [k for k in item if k in SPECS]
    if len(keys) != 1:
        raise errors.QboFault("2010", "Request has invalid or unsupported property",
                              "A batch item needs exactly one entity or a Query")
    name, body = keys[0], item[keys[0]]
    operation = str(item.get("operation", "")).lower()
    options = str(item.get("optionsData", "")).lower()
    item_books = Books(company, books.epoch, frozenset(options.split(",")) | books.options,
                       books.changes, books.hidden)
    if operation == "create":
        result = item_books.create(name, body)
        # Items are independent: later items cannot see what this one created.
        books.hidden.add((name, result["Id"]))
    elif operation == "update" and "void" in options:
        result = item_books.void(name, body)
    elif operation == "update":
        result = item_books.update(name, body)
    elif operation == "delete":
        result = item_books.delete(name, body)
    else:
        raise errors.QboFault("2010", "Request has invalid or unsupported property",
                              f"Unsupported batch operation {operation!r}", "operation")
    return {name: result}


def _send(company: Company, req: ApiRequest, books: Books, name: str, obj_id: str) -> Obj:
    obj = books.read(name, obj_id)
    to = req.params.get("sendTo") or (obj.get("BillEmail") or {}).get("Address")
    if not to:
        raise errors.business("Email address is required to send this transaction.",
                              code="6420", element="BillEmail")
    if "@" not in to or "." not in to.split("@")[-1]:
        raise errors.QboFault("2210", "Invalid Email Address", f"Invalid Email Address : {to}",
                              "BillEmail")
    now = fmt_seconds(books.epoch, company.utc_offset)
    updated = {**obj, "EmailStatus": "EmailSent", "BillEmail": {"Address": to},
               "DeliveryInfo": {"DeliveryType": "Email", "DeliveryTime": now}}
    stored = books.replace(name, updated, op="Emailed")
    books.sent.append({"realm_id": company.realm_id, "entity": name, "id": obj_id, "to": to,
                       "time": now, "doc_number": obj.get("DocNumber"),
                       "total": obj.get("TotalAmt")})
    return {name: stored}


def _pdf(company: Company, books: Books, name: str, obj_id: str) -> bytes:
    obj = books.read(name, obj_id)
    info = company.get("CompanyInfo", "1") or {}
    return render_pdf(str(info.get("CompanyName", company.name)), name, obj)


@dataclass
class Outcome:
    """What one API call did: the response and the changes it committed."""

    result: ApiResult
    changes: list[Change] = field(default_factory=list)
    emails: list[Obj] = field(default_factory=list)


def _fingerprint(req: ApiRequest) -> str:
    params = sorted((k, v) for k, v in req.params.items() if k not in ("requestid",
                                                                       "minorversion"))
    digest = hashlib.sha256(req.body).hexdigest()
    return f"{req.method} {req.path.lower()} {params} {digest}"


def execute(store: Store, req: ApiRequest) -> Outcome:
    """Run one API call (the caller has authenticated it). Thread-safe."""
    with store.lock:
        company = store.companies[req.realm]
        epoch = store.clock.time()
        time_text = fmt_millis(epoch, company.utc_offset)
        try:
            route = _route(req.method, req.path, req.params)
        except errors.QboFault as fault:
            return Outcome(_fault_result(fault, time_text))
        request_id = req.params.get("requestid", "") if route.write else ""
        if request_id:
            replay = _replay(company, req, request_id, time_text)
            if replay is not None:
                return Outcome(replay)
        options = frozenset(req.params.get("include", "").lower().split(","))
        books = Books(company, epoch, options)
        outcome = _run(route, company, req, books, time_text)
        if request_id:
            company.request_ids[request_id] = [_fingerprint(req), outcome.result.status,
                                               outcome.result.body.decode("utf-8")]
        return outcome


def _run(route: Route, company: Company, req: ApiRequest, books: Books,
         time_text: str) -> Outcome:
    try:
        payload = route.run(company, req, books)
    except errors.QboFault as fault:
        return Outcome(_fault_result(fault, time_text), books.changes, books.sent)
    if isinstance(payload, bytes):
        return Outcome(ApiResult(200, payload, "application/pdf"))
    body = json.dumps({**payload, "time": time_text}).encode("utf-8")
    return Outcome(ApiResult(200, body, committed=route.write), books.changes, books.sent)


def _fault_result(fault: errors.QboFault, time_text: str) -> ApiResult:
    body = json.dumps({"Fault": fault.fault_json(), "time": time_text}).encode("utf-8")
    return ApiResult(fault.status, body)


def _replay(company: Company, req: ApiRequest, request_id: str,
            time_text: str) -> ApiResult | None:
    if len(request_id) > REQUEST_ID_MAX:
        fault = errors.QboFault("2130", "Invalid Request Id Format",
                                f"Invalid Request Id Format : requestid longer than "
                                f"{REQUEST_ID_MAX} characters")
        return _fault_result(fault, time_text)
    seen = company.request_ids.get(request_id)
    if seen is None:
        return None
    if seen[0] != _fingerprint(req):
        # Same requestid, different request: QBO's choice between replay and 600 is
        # UNCONFIRMED; the sandbox refuses (stricter) so client bugs surface.
        fault = errors.QboFault("600", "Duplicate Request ID",
                                f"Duplicate Request ID : requestid {request_id} was already "
                                "used for a different request")
        return _fault_result(fault, time_text)
    return ApiResult(int(seen[1]), str(seen[2]).encode("utf-8"))


def direct_write(store: Store, realm: str, entity: str, bodies: list[Obj],
                 op: str = "create") -> tuple[list[Obj], list[Change]]:
    """Bulk/user writes from the control API: same rules, no HTTP, no log, no throttle."""
    with store.lock:
        company = store.companies[realm]
        books = Books(company, store.clock.time())
        out = []
        for body in bodies:
            if op == "create":
                out.append(_create_any(books, entity, body))
            elif op == "update":
                out.append(books.update(entity, {**body, "sparse": body.get("sparse", True)}))
            elif op == "delete":
                out.append(books.delete(entity, body))
            else:
                out.append(books.void(entity, body))
        return out, books.changes


def _create_any(books: Books, entity: str, body: Obj) -> Obj:
    spec = SPECS[entity]
    if spec.kind != "readonly":
        return books.create(entity, body)
    # TaxCode/TaxRate cannot be created through the API; the control API may seed them.
    data = clean({k: v for k, v in body.items() if k not in ("Id", "SyncToken", "MetaData")})
    data.setdefault("Active", True)
    return books.store_raw(spec, data)
