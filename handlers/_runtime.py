"""The per-worker runtime singleton: built on first use, reused by every invocation (invariant 8).

Layer: edge wiring. Nothing runs at import time. Tests and the local runner install their own
runtime with `set_runtime()`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from failover.wiring import Runtime


class _Holder:
    lock = threading.Lock()
    runtime: Runtime | None = None


def get_runtime() -> Runtime:
    if _Holder.runtime is None:
        with _Holder.lock:
            if _Holder.runtime is None:
                from failover.config import Settings
                from failover.wiring import build_runtime

                _Holder.runtime = build_runtime(Settings.from_env())
    return _Holder.runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Install a runtime (tests, the local runner); None forgets it so the next call rebuilds."""
    with _Holder.lock:
        _Holder.runtime = runtime
