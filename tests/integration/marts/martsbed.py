"""The marts tests' stack: what ``make demo`` left (see conftest.py)."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import sqlalchemy as sa


@dataclass
class DemoStack:
    warehouse: sa.Engine
    source: sa.Engine
    realm: str
    port: int
    output: list[str]
    code: int
    environ: dict[str, str]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
