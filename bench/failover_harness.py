"""Forced failovers of a real local PostgreSQL pair, watched by the product's runtime: the shared harness.

Layer: benchmark support (never deployed, never imported by the app). `FailoverStack` starts a real
PostgreSQL 15 primary + synchronous standby (`local.pgpair`) behind the management API emulator
(`local.arm_emulator`), an Azurite of its own, optionally a Teams sink, the product's runtime
(`build_runtime`, real clock) probing back to back the way the timer does (`Prober.run_once`), and
an independent client committing every 50 ms (`local.clients.WritingClient`). It only measures: it
must not change how the product probes, records or posts.
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

PROBE_WINDOW = timedelta(seconds=15)  # one Prober.run_once, back to back


@dataclass(frozen=True)
class Failover:
    """One forced failover as the client and the product saw it (times are time.time())."""

    started: float
    client_gap: float
    client_last_ok: float
    client_first_ok: float
    incident: Any
    recorded_at: float | None  # when the incident was first seen recorded (None: not polled for)

    @property
    def downtime(self) -> float | None:
        return None if self.incident is None else self.incident.write_downtime_seconds

    @property
    def error(self) -> float | None:
        """The incident's write downtime minus the client's gap, seconds."""
        return None if self.downtime is None else round(self.downtime - self.client_gap, 3)


@dataclass
class FailoverStack:
    """The local stack for one benchmark; use as a context manager (everything stops on exit)."""

    subscription: str
    group: str
    name: str
    table: str
    quiet: int = 5  # INCIDENT_QUIET_SECONDS: short, so that every failover gets an incident of its own
    env: dict[str, str] = field(default_factory=dict)
    teams_delay: float | None = None  # None: no Teams webhook
    runtime: Any = None
    emulator: Any = None
    pair: Any = None
    sink: Any = None
    writer: Any = None
    resource_id: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _cleanup: list[Any] = field(default_factory=list)

    def __enter__(self) -> FailoverStack:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        from failover.config import Settings
        from failover.wiring import build_runtime
        from local import pgpair
        from local.arm_emulator import ArmEmulator
        from local.services import LocalServices, free_port
        from local.teams_sink import SinkResponse, TeamsSink

        services = LocalServices()
        self._cleanup.append(services.stop)
        base = Path(tempfile.mkdtemp(prefix="bench-failover-"))
        self._cleanup.append(lambda: shutil.rmtree(base, ignore_errors=True))
        password = secrets.token_urlsafe(18)
        storage = services.azurite(free_port())
        env = dict(self.env)
        if self.teams_delay is not None:
            self.sink = TeamsSink().start()
            if self.teams_delay:  # every post of the run answered that late (a few cards per failover)
                self.sink.script([SinkResponse(202, delay=self.teams_delay)] * 1000)
            env["TEAMS_WEBHOOK_URL"] = self.sink.url
        self.pair = pgpair.start_pair(base, password=password)
        self._cleanup.append(lambda: pgpair.stop_pair(self.pair))
        self.emulator = ArmEmulator(
            subscription_id=self.subscription, watchdog_interval=0.5, min_phase_seconds=0.3
        ).start()
        self._cleanup.append(lambda: self.emulator.stop(timeout=60))
        self.emulator.watchdog_enabled = False  # only the requested failovers
        self.resource_id = self.emulator.add_server(self.group, self.name, pair=self.pair)
        settings = Settings.from_env(
            {
                "AzureWebJobsStorage": storage,
                "FAILOVER_TABLE": self.table + secrets.token_hex(4),
                "MONITORED_SERVERS": self.resource_id,
                "ARM_ENDPOINT": self.emulator.base_url,
                "PG_AUTH": "password",
                "PG_PASSWORD": password,
                "PG_CONNINFO_OVERRIDES": json.dumps({self.name: self.pair.conninfo()}),
                "PG_CREATE_HEARTBEAT_TABLE": "true",
                "INCIDENT_QUIET_SECONDS": str(self.quiet),
                **env,
            }
        )
        self.runtime = build_runtime(settings)
        self.new_client()
        self._spawn(self._probe_loop, "bench-prober")

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _probe_loop(self) -> None:
        while not self._stop.is_set():
            self.runtime.prober.run_once(window=PROBE_WINDOW)

    def new_client(self) -> None:
        """A fresh writing client (each one stops by itself after 10 minutes)."""
        from local.clients import WritingClient

        if self.writer is not None:
            self.writer.stop()
        self.writer = WritingClient(self.pair.conninfo(include_password=True)).start()

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        probe = getattr(self.runtime, "db_probe", None)
        if probe is not None:
            probe.close()  # its kept sessions and their watcher thread
        for closing in (self.writer, self.sink):
            if closing is not None:
                closing.stop()
        for step in reversed(self._cleanup):
            step()
        self._cleanup.clear()

    def healthy(self, timeout: float = 180) -> None:
        self.emulator.wait_for(
            self.group, self.name, lambda s: s.ha_state == "Healthy" and not s.busy, timeout=timeout
        )

    def fail_over(self, *, arm_delay: float = 0.0, steady: float = 3.0, poll_incident: bool) -> Failover:
        """One forced failover, asked for through the product's inspector; bounded throughout.

        `arm_delay` slows every management API call meanwhile; `poll_incident` polls every 50 ms for
        the moment the incident is recorded (the failover runs on a thread of its own meanwhile).
        """
        inspector = self.runtime.inspector
        assert inspector is not None
        self.healthy()
        time.sleep(steady)  # steady state: both the probe and the client are writing
        if arm_delay:
            self.emulator.inject_delay(r".*", arm_delay, count=1_000_000)
        started = time.time()
        request = threading.Thread(
            target=inspector.start_failover, args=(self.resource_id, "ForcedFailover"), daemon=True
        )
        request.start()
        recorded_at = self._wait_for_incident(started, timeout=120) if poll_incident else None
        request.join(timeout=180)
        self.emulator.clear_injections()
        self.healthy()
        incident = self._wait_for_downtime(started, timeout=60)
        gap, last_ok, first_ok = self.writer.gap_within(started, time.time())
        return Failover(started, gap, last_ok, first_ok, incident, recorded_at)

    def settle(self) -> None:
        """Let the incident go quiet and resolve (the sweeper's tick), so the next one is new."""
        time.sleep(self.quiet + 1)
        self.runtime.responder.sweep()

    def cards_since(self, count: int) -> list[Any]:
        return [] if self.sink is None else list(self.sink.received[count:])

    def _latest(self, started: float) -> Any:
        after = datetime.fromtimestamp(started, timezone.utc) - timedelta(seconds=2)
        page = self.runtime.store.incidents_of_server(
            self.name, since=None, until=None, status=None, limit=3, after=None
        )
        fresh = [i for i in page.incidents if i.opened_at >= after]
        return fresh[0] if fresh else None

    def _wait_for_incident(self, started: float, *, timeout: float) -> float | None:
        """When (time.time()) this failover's incident was first seen recorded, polling every 50 ms."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._latest(started) is not None:
                return time.time()
            time.sleep(0.05)
        return None

    def _wait_for_downtime(self, started: float, *, timeout: float) -> Any:
        """This failover's incident once its write downtime is recorded (or as it is at the timeout)."""
        deadline = time.monotonic() + timeout
        incident = self._latest(started)
        while time.monotonic() < deadline:
            incident = self._latest(started)
            if incident is not None and incident.write_downtime_seconds is not None:
                return incident
            time.sleep(0.25)
        return incident
