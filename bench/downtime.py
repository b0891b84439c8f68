"""Downtime accuracy: forced failovers of a real PostgreSQL pair, the probe's figure against a client's.

A real PostgreSQL 15 primary + synchronous standby (`local.pgpair`) backs a server in the ARM
emulator (`local.arm_emulator`). The product's runtime (`build_runtime`, real clock) probes it the
way the timer does (`Prober.run_once`, back to back, with the shipped sampling intervals: a write
every 0.5 s, every 0.2 s while writes fail), against an Azurite of its own. Each failover is asked
for through the product's own `ManagementApiInspector.start_failover(..., "ForcedFailover")` over
the real azure-mgmt client; the emulator fails the pair over and rebuilds the standby.

An independent client commits a row every 50 ms through the same multi-host endpoint; its gap
(last successful commit before the failover to the first one after) is compared with the
incident's `write_downtime_seconds`. Target: within 1 s.
"""

from __future__ import annotations

import json
import secrets
import shutil
import statistics
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench.common import Result, save_json

SUBSCRIPTION = "0b0b0b0b-1111-2222-3333-444444444444"
GROUP, NAME = "rg-bench", "pg-bench-01"
TARGET = 1.0
QUIET = 5  # seconds: short, so that every failover gets an incident of its own


def run(*, quick: bool = False) -> Result:
    from failover.config import Settings
    from failover.wiring import build_runtime
    from local import pgpair
    from local.arm_emulator import ArmEmulator
    from local.clients import WritingClient
    from local.services import LocalServices, free_port

    failovers = 2 if quick else 5
    result = Result(
        "downtime",
        f"Downtime accuracy: {failovers} forced failovers of a real PostgreSQL pair",
        "ManagementApiInspector.start_failover(ForcedFailover) -> ARM emulator -> local.pgpair; the product's"
        " Prober.run_once back to back (real clock); an independent client committing every 50 ms",
    )
    services = LocalServices()
    base = Path(tempfile.mkdtemp(prefix="bench-pgpair-"))
    password = secrets.token_urlsafe(18)
    pair = None
    emulator = None
    writer = None
    stop = threading.Event()
    prober_thread = None
    rows: list[dict[str, Any]] = []
    try:
        storage = services.azurite(free_port())
        pair = pgpair.start_pair(base, password=password)
        emulator = ArmEmulator(
            subscription_id=SUBSCRIPTION, watchdog_interval=0.5, min_phase_seconds=0.3
        ).start()
        emulator.watchdog_enabled = False  # only the requested failovers
        resource_id = emulator.add_server(GROUP, NAME, pair=pair)
        settings = Settings.from_env(
            {
                "AzureWebJobsStorage": storage,
                "FAILOVER_TABLE": "downtime" + secrets.token_hex(4),
                "MONITORED_SERVERS": resource_id,
                "ARM_ENDPOINT": emulator.base_url,
                "PG_AUTH": "password",
                "PG_PASSWORD": password,
                "PG_CONNINFO_OVERRIDES": json.dumps({NAME: pair.conninfo()}),
                "PG_CREATE_HEARTBEAT_TABLE": "true",
                "PROBE_ARM_INTERVAL_SECONDS": "1",
                "INCIDENT_QUIET_SECONDS": str(QUIET),
                "INCIDENT_MERGE_SECONDS": str(QUIET),
            }
        )
        runtime = build_runtime(settings)
        inspector = runtime.inspector
        assert inspector is not None
        writer = WritingClient(pair.conninfo(include_password=True)).start()

        def probe_loop() -> None:
            for _ in range(10_000):
                if stop.is_set():
                    return
                runtime.prober.run_once(window=timedelta(seconds=15))

        prober_thread = threading.Thread(target=probe_loop, name="bench-prober", daemon=True)
        prober_thread.start()

        def healthy() -> None:
            emulator.wait_for(GROUP, NAME, lambda s: s.ha_state == "Healthy" and not s.busy, timeout=180)

        for n in range(failovers):
            healthy()
            time.sleep(3)  # steady state: both the probe and the client are writing
            started = time.time()
            inspector.start_failover(resource_id, "ForcedFailover", wait=True)
            incident = _wait_for_downtime(runtime, NAME, started, timeout=90)
            healthy()
            gap, last_ok, first_ok = writer.gap_within(started, time.time())
            measured = incident.write_downtime_seconds if incident else None
            rows.append(
                {
                    "failover": n + 1,
                    "incident_id": incident.incident_id if incident else None,
                    "probe_downtime": measured,
                    "client_gap": round(gap, 3),
                    "error": None if measured is None else round(measured - gap, 3),
                    "client_last_ok": datetime.fromtimestamp(last_ok, timezone.utc).isoformat(),
                    "client_first_ok": datetime.fromtimestamp(first_ok, timezone.utc).isoformat(),
                }
            )
            time.sleep(QUIET + 1)
            runtime.responder.sweep()  # the sweeper's tick: the recovered incident resolves
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        stop.set()
        if prober_thread is not None:
            prober_thread.join(timeout=60)
        if writer is not None:
            writer.stop()
        if emulator is not None:
            emulator.stop(timeout=60)
        if pair is not None:
            pgpair.stop_pair(pair)
        services.stop()
        shutil.rmtree(base, ignore_errors=True)

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
        "The probe measures from its last good write before the outage to its first good write after, so it"
        " overstates the client's gap by up to one sampling interval (0.5 s) plus the time to notice recovery"
        " (0.2 s sampling while failing); the client samples every 50 ms."
    )
    save_json("downtime.json", rows)
    return result


def _wait_for_downtime(runtime: Any, server: str, started: float, *, timeout: float) -> Any:
    """The incident opened by this failover, once its write downtime is recorded (bounded)."""
    after = datetime.fromtimestamp(started, timezone.utc) - timedelta(seconds=2)
    deadline = time.monotonic() + timeout
    latest = None
    for _ in range(int(timeout / 0.25) + 1):
        page = runtime.store.incidents_of_server(
            server, since=None, until=None, status=None, limit=5, after=None
        )
        fresh = [i for i in page.incidents if i.last_signal_at >= after]
        latest = fresh[0] if fresh else None
        if latest is not None and latest.write_downtime_seconds is not None:
            return latest
        if time.monotonic() > deadline:
            break
        time.sleep(0.25)
    return latest
