"""Detection you can trust (issue 11): false incidents, time to detect, downtime error under slow sinks.

1. False incidents: at least 100,000 simulated database checks (one every 0.5 s) with 1% injected
   single-check failures (a dropped connection or a statement timeout) and 10 minutes of refused
   logins, fed through the probe's own `diff_check` and the pure core `failover.incidents.decide`
   in simulated time. Target: 0 incidents.
2. Primary lost -> incident recorded and -> first Teams card, p50 and p99 over at least 10 forced
   failovers of a real PostgreSQL pair (`local.pgpair`) behind the management API emulator, with the
   product's runtime (`build_runtime`, real clock, its own Azurite, a Teams sink). "Primary lost" is
   the independent client's last good write. Targets: PROBE_DB_OUTAGE_SECONDS + 1 s, and 2 s more.
3. Downtime error against that client (a commit every 50 ms, `local.clients.WritingClient`): the
   incident's `write_downtime_seconds` minus the client's gap, with the default intervals, with a
   Teams webhook taking 5 s per post, and with a management API taking 2 s per call. Target: mean
   |error| <= 0.3 s.
"""

from __future__ import annotations

import json
import random
import secrets
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench.common import Result, percentile, save_json

SUBSCRIPTION = "0b0b0b0b-1111-2222-3333-555555555555"
GROUP, NAME = "rg-bench", "pg-detect-01"
OUTAGE_SECONDS = 3.0  # PROBE_DB_OUTAGE_SECONDS default
QUIET = 5


def run(*, quick: bool = False) -> Result:
    result = Result(
        "detection",
        "Detection: false incidents, time to detect, downtime error with slow sinks",
        "diff_check + incidents.decide in simulated time; build_runtime + Prober.run_once against a real"
        " PostgreSQL pair behind the ARM emulator, a Teams sink and an independent 50 ms writing client",
    )
    _false_incidents(result, checks=100_000 if not quick else 20_000)
    cases = [
        ("default intervals", 10 if not quick else 3, 0.0, 0.0),
        ("Teams webhook 5 s per post", 3 if not quick else 1, 5.0, 0.0),
        ("management API 2 s per call", 3 if not quick else 1, 0.0, 2.0),
    ]
    rows: list[dict[str, Any]] = []
    for label, failovers, teams_delay, arm_delay in cases:
        measured = _stack(failovers, teams_delay=teams_delay, arm_delay=arm_delay)
        rows.extend({"case": label, **m} for m in measured.rows)
        if measured.error:
            result.error = f"{label}: {measured.error}"
            break
        _report(result, label, measured, detection=not teams_delay and not arm_delay)
    save_json("detection.json", rows)
    return result


# --- 1. false incidents (pure, simulated time) -----------------------------------------------------


def _false_incidents(result: Result, *, checks: int) -> None:
    from failover.incidents import DbProbeState, Policy, ServerState, decide
    from failover.ports import DbCheck
    from failover.sources.db_faults import DbFault
    from failover.sources.probes import DbProbeMemory, diff_check

    rid = (
        f"/subscriptions/{SUBSCRIPTION}/resourcegroups/{GROUP}"
        f"/providers/microsoft.dbforpostgresql/flexibleservers/{NAME}"
    )
    rng = random.Random(11)
    t0 = datetime(2026, 11, 25, tzinfo=timezone.utc)
    state = ServerState(server=NAME, resource_id=rid)
    memory = DbProbeMemory(DbProbeState(), watch_since=t0)
    policy = Policy()
    refused = range(checks // 2, checks // 2 + 1200)  # 1,200 checks at 0.5 s: 10 minutes of refused logins
    injected = notes = 0
    started = time.perf_counter()
    for n in range(checks):
        at = t0 + timedelta(seconds=n * 0.5)
        done = at + timedelta(milliseconds=20)
        if n in refused:
            check = DbCheck(
                NAME, at, done, False, False, fault=DbFault.LOGIN_REFUSED.value, error="login refused"
            )
        elif rng.random() < 0.01:
            injected += 1
            fault = rng.choice((DbFault.UNREACHABLE, DbFault.STATEMENT_TIMEOUT))
            check = DbCheck(NAME, at, done, fault is DbFault.STATEMENT_TIMEOUT, False, fault=fault.value)
        else:
            check = DbCheck(NAME, at, done, True, True, False, postmaster_started_at=t0)
        signals, memory = diff_check(memory, check, resource_id=rid, received_at=done)
        for signal in signals:
            notes += 1
            state = decide(state, signal, now=done, policy=policy).state
    seconds = time.perf_counter() - started
    result.add(
        "false incidents",
        f"{len(state.records)}",
        "0",
        not state.records,
        f"{checks:,} checks (0.5 s apart, {checks * 0.5 / 3600:.1f} h simulated), {injected:,} injected"
        f" single failures (dropped connection or statement timeout), 1,200 refused logins (10 min);"
        f" {notes:,} notes recorded, epoch {state.epoch}; {checks / seconds:,.0f} checks/s",
    )


# --- 2 and 3. the local stack ----------------------------------------------------------------------


@dataclass
class _Measured:
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def _stack(failovers: int, *, teams_delay: float, arm_delay: float) -> _Measured:
    from failover.config import Settings
    from failover.wiring import build_runtime
    from local import pgpair
    from local.arm_emulator import ArmEmulator
    from local.clients import WritingClient
    from local.services import LocalServices, free_port
    from local.teams_sink import SinkResponse, TeamsSink

    measured = _Measured()
    services = LocalServices()
    base = Path(tempfile.mkdtemp(prefix="bench-detect-"))
    password = secrets.token_urlsafe(18)
    pair = emulator = writer = sink = prober_thread = None
    stop = threading.Event()
    try:
        storage = services.azurite(free_port())
        sink = TeamsSink(default=SinkResponse(202, delay=teams_delay)).start()
        pair = pgpair.start_pair(base, password=password)
        emulator = ArmEmulator(
            subscription_id=SUBSCRIPTION, watchdog_interval=0.5, min_phase_seconds=0.3
        ).start()
        emulator.watchdog_enabled = False
        resource_id = emulator.add_server(GROUP, NAME, pair=pair)
        settings = Settings.from_env(
            {
                "AzureWebJobsStorage": storage,
                "FAILOVER_TABLE": "detect" + secrets.token_hex(4),
                "MONITORED_SERVERS": resource_id,
                "ARM_ENDPOINT": emulator.base_url,
                "TEAMS_WEBHOOK_URL": sink.url,
                "PG_AUTH": "password",
                "PG_PASSWORD": password,
                "PG_CONNINFO_OVERRIDES": json.dumps({NAME: pair.conninfo()}),
                "PG_CREATE_HEARTBEAT_TABLE": "true",
                "INCIDENT_QUIET_SECONDS": str(QUIET),
            }
        )
        runtime = build_runtime(settings)
        inspector = runtime.inspector
        assert inspector is not None
        writer = WritingClient(pair.conninfo(include_password=True)).start()

        def probe_loop() -> None:
            while not stop.is_set():
                runtime.prober.run_once(window=timedelta(seconds=15))

        prober_thread = threading.Thread(target=probe_loop, name="bench-detect-prober", daemon=True)
        prober_thread.start()

        def healthy() -> None:
            emulator.wait_for(GROUP, NAME, lambda s: s.ha_state == "Healthy" and not s.busy, timeout=180)

        for n in range(failovers):
            healthy()
            time.sleep(3)
            if arm_delay:
                emulator.inject_delay(r".*", arm_delay, count=1_000_000)
            cards_before = len(sink.received)
            started = time.time()
            failover = threading.Thread(
                target=inspector.start_failover, args=(resource_id, "ForcedFailover"), daemon=True
            )
            failover.start()
            recorded_at, incident = _wait_for_incident(runtime, started, timeout=120)
            failover.join(timeout=180)
            emulator.clear_injections()
            healthy()
            incident = _wait_for_downtime(runtime, incident, timeout=60)
            gap, last_ok, _ = writer.gap_within(started, time.time())
            cards = sink.received[cards_before:]
            downtime = incident.write_downtime_seconds if incident else None
            measured.rows.append(
                {
                    "failover": n + 1,
                    "incident_id": incident.incident_id if incident else None,
                    "to_incident": None if recorded_at is None else round(recorded_at - last_ok, 3),
                    "to_card": round(cards[0].at - last_ok, 3) if cards else None,
                    "client_gap": round(gap, 3),
                    "probe_downtime": downtime,
                    "error": None if downtime is None else round(downtime - gap, 3),
                }
            )
            time.sleep(QUIET + 1)
            runtime.responder.sweep()
    except Exception as exc:
        measured.error = f"{type(exc).__name__}: {exc}"
    finally:
        stop.set()
        if prober_thread is not None:
            prober_thread.join(timeout=60)
        for closing in (writer, sink):
            if closing is not None:
                closing.stop()
        if emulator is not None:
            emulator.stop(timeout=60)
        if pair is not None:
            pgpair.stop_pair(pair)
        services.stop()
        shutil.rmtree(base, ignore_errors=True)
    return measured


def _latest(runtime: Any, after: datetime) -> Any:
    page = runtime.store.incidents_of_server(NAME, since=None, until=None, status=None, limit=3, after=None)
    fresh = [i for i in page.incidents if i.opened_at >= after]
    return fresh[0] if fresh else None


def _wait_for_incident(runtime: Any, started: float, *, timeout: float) -> tuple[float | None, Any]:
    """When (time.time()) the incident of this failover was first seen recorded, polling every 50 ms."""
    after = datetime.fromtimestamp(started, timezone.utc) - timedelta(seconds=2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        incident = _latest(runtime, after)
        if incident is not None:
            return time.time(), incident
        time.sleep(0.05)
    return None, None


def _wait_for_downtime(runtime: Any, incident: Any, *, timeout: float) -> Any:
    if incident is None:
        return None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = runtime.store.get_incident(incident.incident_id)
        if found is not None and found.write_downtime_seconds is not None:
            return found
        time.sleep(0.25)
    return runtime.store.get_incident(incident.incident_id)


def _report(result: Result, label: str, measured: _Measured, *, detection: bool) -> None:
    rows = measured.rows
    if detection:
        for key, name, target in (
            ("to_incident", "primary lost -> incident recorded", OUTAGE_SECONDS + 1),
            ("to_card", "primary lost -> first Teams card", OUTAGE_SECONDS + 3),
        ):
            values = [r[key] for r in rows if r[key] is not None]
            missing = len(rows) - len(values)
            if values:
                p50, p99 = percentile(values, 50), percentile(values, 99)
                result.add(
                    f"{name} (p50 / p99, {len(values)} failovers)",
                    f"{p50:.2f} s / {p99:.2f} s",
                    f"p99 <= {target:.0f} s",
                    p99 <= target and not missing,
                    f"{missing} failover(s) without one" if missing else "",
                )
    errors = [abs(r["error"]) for r in rows if r["error"] is not None]
    missing = sum(1 for r in rows if r["error"] is None)
    if errors:
        mean = statistics.mean(errors)
        result.add(
            f"downtime mean |error|, {label} ({len(errors)} failovers)",
            f"{mean:.3f} s",
            "<= 0.3 s",
            mean <= 0.3 and not missing,
            f"worst {max(errors):.3f} s" + (f"; {missing} without a measured downtime" if missing else ""),
        )
    else:
        result.add(f"downtime, {label}", "not measured", "<= 0.3 s", False, f"{len(rows)} failovers")
