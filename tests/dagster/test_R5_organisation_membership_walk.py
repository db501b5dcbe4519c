"""R5 under a random walk of organisation memberships, through the push job (Dagster,
dagster-postgres) over the sandbox: contacts join, leave and move between organisations,
organisations are renamed, new contacts arrive and contacts without sales are deleted, with
every record in a chunk of its own in some runs and all in one chunk in others. After each run
every organisation with a sale is one QBO customer under its name, linked to its lowest-id
contact, and every sale bills its organisation's customer (or its own contact's); nothing is
held or refused, the pull makes no contact of any of our QBO customers, and the next push
writes nothing. The walk found two cases the hand-written
tests had missed (a run crashed on the unique QBO link; a newcomer held for good)."""

from __future__ import annotations

import random
from typing import Any

import dagster as dg
import pytest
from pushbed import PushBed
from test_R5_R11_one_customer_per_organisation import (
    _contact,
    _customers_named,
    _invoice,
    _one,
    _sale,
    _state,
)
from test_R6_R10_edits_after_create import _push

from qbo_pipelines.defs.push import companies
from qbo_pipelines.sync import pipeline, push

ROUNDS = 6


class _Walk:
    """The walk's source company: its organisations (id -> name), contacts and what it did."""

    def __init__(self, bed: PushBed, rnd: random.Random) -> None:
        self.bed, self.rnd = bed, rnd
        self.orgs: dict[int, str] = {}
        for name in ("Alder Walk Co", "Beech Walk Ltd", "Cedar Walk plc"):
            self.orgs[
                int(
                    _one(
                        bed, "INSERT INTO app.organisations (name) VALUES (:n) RETURNING id", n=name
                    )
                )
            ] = name
        self.contacts = [
            _contact(bed, rnd.choice([None, *self.orgs]), given)
            for given in ("Ann", "Bob", "Cid", "Dee", "Eve", "Fay", "Gus")
        ]
        self.docs = 0
        self.log: list[str] = []
        for c in self.contacts:
            if rnd.random() < 0.6:
                self.sale(c)

    def sale(self, contact: int) -> None:
        self.docs += 1
        _sale(self.bed, contact, f"WALK-{self.docs}")

    def member(self, contact: int, org: int | None) -> None:
        self.bed.sql(
            self.bed.env.source,
            "UPDATE app.contacts SET organisation_id = :o WHERE id = :c",
            o=org,
            c=contact,
        )

    def step(self, i: int) -> None:
        rnd, bed = self.rnd, self.bed
        op = rnd.choice(["move", "move", "leave", "sale", "rename", "new", "delete"])
        c = rnd.choice(self.contacts)
        if op == "move":
            org = rnd.choice(list(self.orgs))
            self.member(c, org)
        elif op == "leave":
            org = None
            self.member(c, None)
        elif op == "sale":
            self.sale(c)
        elif op == "rename":
            org = rnd.choice(list(self.orgs))
            name = f"{self.orgs[org].split()[0]} Walk {rnd.choice(['Co', 'Ltd', 'Group'])} {i}"
            bed.sql(
                bed.env.source,
                "UPDATE app.organisations SET name = :n WHERE id = :o",
                n=name,
                o=org,
            )
            self.orgs[org] = name
        elif op == "new":
            c = _contact(bed, rnd.choice(list(self.orgs)), f"New{i}")
            self.contacts.append(c)
        elif _one(bed, "SELECT count(*) FROM app.sales WHERE contact_id = :c", c=c) == 0:
            bed.sql(bed.env.source, "DELETE FROM app.contacts WHERE id = :c", c=c)
            self.contacts.remove(c)
        self.log.append(f"{op} #{c}")

    def check(self) -> None:
        """Every organisation with a sale is one QBO customer under its name, linked to its
        lowest-id contact; every sale bills its organisation's customer, or its contact's."""
        bed, why = self.bed, " | ".join(self.log)
        member = dict(
            bed.sql(
                bed.env.source,
                "SELECT id, organisation_id FROM app.contacts WHERE id = ANY(:c)",
                c=self.contacts,
            )
        )
        sales = bed.sql(
            bed.env.source,
            "SELECT id, doc_number, contact_id FROM app.sales WHERE contact_id = ANY(:c)"
            " AND total > 0",
            c=self.contacts,
        )
        assert _problems(bed, "customers", self.contacts) == [], why
        assert _problems(bed, "invoices", [s[0] for s in sales]) == [], why
        billed: dict[int | None, str] = {}
        for org, name in self.orgs.items():
            if not any(member[s[2]] == org for s in sales):
                continue
            [customer] = _customers_named(bed, name)
            first = min(c for c, o in member.items() if o == org)
            assert _state(bed, "customers", first) == [("synced", customer["Id"])], why
            billed[org] = customer["Id"]
        for _sid, doc, contact in sales:
            org = member[contact]
            if org is None:
                [(status, own)] = _state(bed, "customers", contact)
                assert status == "synced", why
                billed_to = own
            else:
                billed_to = billed[org]
            assert _invoice(bed, doc)["CustomerRef"]["value"] == billed_to, f"{why}: {doc}"


def _problems(bed: PushBed, entity: str, source_ids: list[int]) -> list[Any]:
    """What is held or refused of these records of ``entity``."""
    return bed.sql(
        bed.env.warehouse,
        "SELECT source_id, reason FROM sync.quarantine WHERE realm_id = :r AND entity = :e"
        " AND resolved_at IS NULL AND source_id = ANY(:s)"
        " UNION ALL SELECT source_id, error_message FROM sync.record_state"
        " WHERE realm_id = :r AND entity = :e AND status = 'failed' AND source_id = ANY(:s)",
        r=bed.realm,
        e=entity,
        s=[str(i) for i in source_ids],
    )


def _handed_over(bed: PushBed) -> bool:
    return bool(
        bed.sql(
            bed.env.warehouse,
            "SELECT 1 FROM sync.quarantine WHERE realm_id = :r AND resolved_at IS NULL"
            " AND rule LIKE '%.handed_over'",
            r=bed.realm,
        )
    )


@pytest.mark.parametrize("seed", [5, 11])
def test_R5_organisation_membership_changes_keep_one_customer_per_organisation(
    push_bed: PushBed,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
) -> None:
    bed = push_bed
    rnd = random.Random(seed)
    walk = _Walk(bed, rnd)
    dagster_instance.add_dynamic_partitions(companies.name, [bed.realm])
    _push(bed, dagster_instance)
    walk.check()
    pipeline.pull_all(bed.env, bed.realm, run_id=f"pull-{seed}")  # QBO's own customers come in
    for i in range(ROUNDS):
        for _ in range(rnd.randint(1, 3)):
            walk.step(i)
        monkeypatch.setattr(push, "CHUNK", rnd.choice([1, 500]))
        walk.log.append(f"run (chunks of {push.CHUNK})")
        _push(bed, dagster_instance)
        if _handed_over(bed):  # the contact that left is planned on its own by the next run
            walk.log.append("run (the contacts handed over)")
            _push(bed, dagster_instance)
        walk.check()
        # the pull finds no QBO customer of ours that is not a contact already
        contacts = _one(bed, "SELECT count(*) FROM app.contacts")
        pipeline.pull_all(bed.env, bed.realm, run_id=f"pull-{seed}-{i}")
        assert _one(bed, "SELECT count(*) FROM app.contacts") == contacts, " | ".join(walk.log)
        calls = bed.write_calls()
        _push(bed, dagster_instance)
        assert bed.write_calls() == calls, " | ".join(walk.log)
        walk.check()
