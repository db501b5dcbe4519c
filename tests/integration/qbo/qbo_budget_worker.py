"""A separate PROCESS that uses one company's shared budget (tests of R41 across processes).

Reads its configuration (including the access token) as JSON on stdin and prints one JSON line
(never the token). Modes:

* ``write``: waits until ``start_at``, then creates ``count`` customers named ``prefix NNNN`` with
  :meth:`QboClient.execute` over :func:`plan_dispatches` (``prefer``, or ``singles``), the
  budget in the warehouse (or, with ``"shared": false``, this process's own); prints counts of
  ok / failed results and the dispatches it saw.
* ``hold``: takes ``slots`` in-flight slots of the budget, prints ``{"held": n}`` and sleeps until
  killed (the test kills it with SIGKILL).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from qbo_pipelines.qbo.client import (
    BatchOp,
    Dispatch,
    QboClient,
    plan_dispatches,
    request_id_for,
)
from qbo_pipelines.qbo.ids import RealmId
from qbo_pipelines.qbo.limiter import Limits, pg_limiter_for
from qbo_pipelines.qbo.secret import Secret
from qbo_pipelines.qbo.transport import StaticTokenProvider


def limits_from(cfg: dict[str, Any]) -> Limits:
    return Limits(**cfg.get("limits", {}))


def write(cfg: dict[str, Any]) -> dict[str, Any]:
    realm = RealmId(cfg["realm"])
    client = QboClient(
        cfg["base_url"],
        realm,
        StaticTokenProvider(Secret(cfg["token"])),
        budget=cfg["warehouse_url"] if cfg.get("shared", True) else None,
        limits=limits_from(cfg),
        max_retries=int(cfg.get("max_retries", 6)),
        backoff_base=0.05,
        backoff_max=0.5,
        throttle_pause=float(cfg.get("throttle_pause", 60.0)),
    )
    prefix = cfg["prefix"]
    ops = [
        BatchOp.create(
            "Customer",
            {"DisplayName": f"{prefix} {i:04d}"},
            request_id_for(realm, "Customer", f"{prefix}-{i}", "v1", "create"),
            key=str(i),
        )
        for i in range(int(cfg["count"]))
    ]
    prefer = cfg.get("prefer", "fastest")
    if prefer == "singles":
        plan = [Dispatch.one(op) for op in ops]
    else:
        plan = plan_dispatches(ops, prefer=prefer, limits=limits_from(cfg))
    delay = float(cfg["start_at"]) - time.time()
    if delay > 0:
        time.sleep(delay)
    started = time.time()
    ok = failed = dispatches = 0
    errors: list[str] = []
    for _, results in client.execute(plan):
        dispatches += 1
        for r in results:
            if r.ok:
                ok += 1
            else:
                failed += 1
                errors.append(str(r.error))
    return {
        "ok": ok,
        "failed": failed,
        "errors": errors[:5],
        "dispatches": dispatches,
        "planned": len(plan),
        "batches": sum(1 for d in plan if not d.single),
        "seconds": time.time() - started,
        "calls": client.calls,
    }


def hold(cfg: dict[str, Any]) -> None:
    limiter = pg_limiter_for(
        cfg["warehouse_url"], RealmId(cfg["realm"]), limits_from(cfg), scope=cfg["base_url"]
    )
    for _ in range(int(cfg["slots"])):
        limiter.acquire()
    print(json.dumps({"held": limiter.in_flight}), flush=True)
    while True:
        time.sleep(60)


def main() -> int:
    cfg = json.loads(sys.stdin.readline())
    if cfg["mode"] == "hold":
        hold(cfg)
        return 0
    print(json.dumps(write(cfg)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
