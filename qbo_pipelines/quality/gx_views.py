"""Data Docs views that compile GX's Jinja templates once per process.

Great Expectations builds a new ``jinja2.Environment`` for every page it renders, so each
build compiled its ~100 templates again: two thirds of a checkpoint's time went to the
compiler. These views are GX's own page and index views with one difference: their
environment shares an in-memory bytecode cache (Jinja's ``BytecodeCache`` API), keyed by the
template's name and source checksum, so a template is compiled the first time only. The site
config in :mod:`qbo_pipelines.quality.gx_suites` names them (``view.module_name``), as GX's
site builder allows; nothing of GX is patched.
"""

from __future__ import annotations

import threading
from typing import Any

from great_expectations.render.view.view import DefaultJinjaIndexPageView, DefaultJinjaPageView
from jinja2 import BytecodeCache
from jinja2.bccache import Bucket


class _InMemoryBytecode(BytecodeCache):
    """Compiled templates by bucket key (template name and source checksum)."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def load_bytecode(self, bucket: Bucket) -> None:
        with self._lock:
            code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        code = bucket.bytecode_to_string()
        with self._lock:
            self._code[bucket.key] = code


_COMPILED = _InMemoryBytecode()


class PageView(DefaultJinjaPageView):  # type: ignore[misc]
    """GX's page view (validation and suite pages), its templates compiled once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = _COMPILED


class IndexPageView(DefaultJinjaIndexPageView):  # type: ignore[misc]
    """GX's index page view, its templates compiled once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = _COMPILED
