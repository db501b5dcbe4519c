"""Fault injection: make the next N matching calls fail the way QBO or its gateway fails."""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass

KINDS = ("fault", "throttle", "server_error", "timeout", "xml", "drop_after_commit")


@dataclass
class FaultRule:
    kind: str
    realm_id: str | None = None
    method: str | None = None
    path: str | None = None  # regex searched in the path after /v3/company/{realm}
    count: int | None = 1  # None = forever
    probability: float = 1.0
    status: int | None = None
    code: str | None = None
    message: str | None = None
    detail: str | None = None
    delay_seconds: float = 5.0  # "timeout": how long to hang before the 504

    def matches(self, realm: str | None, method: str, path: str) -> bool:
        if self.count is not None and self.count <= 0:
            return False
        if self.realm_id is not None and self.realm_id != realm:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path is None or re.search(self.path, path) is not None


class FaultInjector:
    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, rule: FaultRule) -> None:
        if rule.kind not in KINDS:
            raise ValueError(f"unknown fault kind {rule.kind!r}; one of {KINDS}")
        if rule.path is not None:
            re.compile(rule.path)
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(self, realm: str | None, method: str, path: str) -> FaultRule | None:
        """The first matching rule (its count is consumed), or None."""
        with self._lock:
            for rule in self._rules:
                if not rule.matches(realm, method, path):
                    continue
                if rule.probability < 1.0 and random.random() >= rule.probability:
                    continue
                if rule.count is not None:
                    rule.count -= 1
                return rule
        return None
