"""The sandbox's journal diff (durability: what a kill -9 keeps) under every kind of change a
company's tables see: values replaced, keys appended, removed, removed and added back (a key
moved to the end), whole tables added and dropped. Replaying the journal's ops on a copy of
the durable state must give the live state, whichever path the diff took."""

from __future__ import annotations

import copy
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from qbo_pipelines.sandbox.journal import Op, _copy, apply, diff

ACTIONS = ("replace", "append", "delete", "readd", "same_value", "new_table", "drop_table")


def _company(rng: random.Random) -> dict[str, Any]:
    tables = {
        entity: {str(i): {"Id": str(i), "v": rng.random()} for i in range(rng.randint(0, 30))}
        for entity in ("Invoice", "Customer")
    }
    return {"companies": {"r1": {"entities": tables, "next_ids": {"Invoice": 1}}}}


def _change(live: dict[str, Any], rng: random.Random, action: str) -> None:
    entities = live["companies"]["r1"]["entities"]
    name = rng.choice(sorted(entities)) if entities else None
    table = entities.get(name, {}) if name else {}
    keys = list(table)
    if action == "replace" and keys:
        key = rng.choice(keys)
        table[key] = {**table[key], "v": rng.random()}
    elif action == "append" and name:
        key = str(1000 + rng.randint(0, 10_000))
        table[key] = {"Id": key}
    elif action == "delete" and keys:
        del table[rng.choice(keys)]
    elif action == "readd" and keys:
        key = rng.choice(keys)
        table[key] = table.pop(key)  # the same object, now last: the order moved
    elif action == "same_value" and keys:
        key = rng.choice(keys)
        table[key] = dict(table[key])  # an equal object, not the same one
    elif action == "new_table":
        entities[f"T{rng.randint(0, 5)}"] = {"1": {"Id": "1"}}
    elif action == "drop_table" and name:
        del entities[name]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32), st.lists(st.lists(st.sampled_from(ACTIONS), max_size=6), max_size=8))
def test_replaying_the_journal_gives_the_live_state(seed: int, commits: list[list[str]]) -> None:
    rng = random.Random(seed)
    live = _company(rng)
    shadow = _copy([], live)
    durable = copy.deepcopy(live)
    for actions in commits:
        for action in actions:
            _change(live, rng, action)
        ops: list[Op] = []
        diff(shadow, live, [], ops)
        for op in ops:
            apply(durable, copy.deepcopy(op))
        assert durable == live
        assert shadow == live
