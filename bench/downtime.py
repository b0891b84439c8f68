"""Downtime accuracy: forced failovers of a real PostgreSQL pair, the probe's figure against a client's.

A real PostgreSQL 15 primary + synchronous standby (`local.pgpair`) backs a server in the ARM
emulator (`local.arm_emulator`). The product's runtime (`build_runtime`, real clock) probes it the
way the timer does (`Prober.run_once`, back to back, with the shipped sampling intervals: a write
every 0.5 s, every 0.2 s while writes fail), against an Azurite of its own. Each failover is asked
for through the product's own `ManagementApiInspector.start_failover(..., "ForcedFailover")` over
the real azure-mgmt client; the emulator fails the pair over and rebuilds the standby.

An independent client commits a row every 50 ms through the same multi-host endpoint; its gap
(last successful commit before the failover to the first one after) is compared with the
incident's `write_downtime_seconds`. Target: within 1 s. The stack is `bench.failover_harness`.
"""

from __future__ import annotations

import statistics
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from bench.common import Result, save_json

if TYPE_CHECKING:
    from bench.failover_harness import Failover

SUBSCRIPTION = "0b0b0b0b-1111-2222-3333-444444444444"
GROUP, NAME = "rg-bench", "pg-bench-01"
TARGET = 1.0
QUIET = 5  # seconds: short, so that every failover gets an incident of its own


def run(*, quick: bool = False) -> Result:
    from bench.failover_harness import FailoverStack

    failovers = 2 if quick else 5
    result = Result(
        "downtime",
        f"Downtime accuracy: {failovers} forced failovers of a real PostgreSQL pair",
        "ManagementApiInspector.start_failover(ForcedFailover) -> ARM emulator -> local.pgpair; the product's"
        " Prober.run_once back to back (real clock); an independent client committing every 50 ms",
    )
    rows: list[dict[str, Any]] = []
    stack = FailoverStack(
        SUBSCRIPTION, GROUP, NAME, "downtime", quiet=QUIET, env={"PROBE_ARM_INTERVAL_SECONDS": "1"}
    )
    try:
        with stack:
            for n in range(failovers):
                measured = stack.fail_over(poll_incident=False)
                rows.append(_row(n + 1, measured))
                stack.settle()
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    _report(result, rows)
    save_json("downtime.json", rows)
    return result


def _row(number: int, measured: Failover) -> dict[str, Any]:
    return {
        "failover": number,
        "incident_id": measured.incident.incident_id if measured.incident else None,
        "probe_downtime": measured.downtime,
        "client_gap": round(measured.client_gap, 3),
        "error": measured.error,
        "client_last_ok": datetime.fromtimestamp(measured.client_last_ok, timezone.utc).isoformat(),
        "client_first_ok": datetime.fromtimestamp(measured.client_first_ok, timezone.utc).isoformat(),
    }


def _report(result: Result, rows: list[dict[str, Any]]) -> None:
    errors = [abs(r["error"]) for r in rows if r["error"] is not None]
    missing = sum(1 for r in rows if r["error"] is None)
    for row in rows:
        result.add(
            f"failover {row['failover']}: probe vs client",
            f"{row['probe_downtime']} s vs {row['client_gap']:.3f} s",
            notes=f"error {row['error']:+.3f} s" if row["error"] is not None else "no downtime recorded",
        )
    if errors:
        result.add(
            "mean |error|",
            f"{statistics.mean(errors):.3f} s",
            f"<= {TARGET:.0f} s",
            statistics.mean(errors) <= TARGET,
        )
        worst = max(errors)
        result.add(
            "worst |error|",
            f"{worst:.3f} s",
            f"<= {TARGET:.0f} s",
            worst <= TARGET and not missing,
            f"{missing} failover(s) without a measured downtime" if missing else "",
        )
    result.notes.append(
        "The probe measures from the moment the server closed its kept session (or, when it did not see"
        " that, its last good write) to its first good write after; it overstates the client's gap by the"
        " time to notice recovery (up to one sampling interval, 0.2 s while failing) plus a reconnect;"
        " the client samples every 50 ms."
    )
