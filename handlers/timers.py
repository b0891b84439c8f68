"""Timer functions: the probe (management API and PostgreSQL) and the outbox sweeper.

Layer: edge. Schedules are 6-field NCRONTAB (seconds first). The probe runs every minute: a
fleet of at most `PROBE_SHARD_SIZE` servers is watched here, within the invocation (see
failover.probing); a larger one is split into shards, one message each on the `probe-shards` queue,
and `handlers.queues.probe_shard` watches each shard on whichever instance takes it. The sweeper
retries due effects and settles quiet incidents. A failing run is logged and left to the next
tick; timers never lose records. Every run ends within its period.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import azure.functions as func

from handlers._runtime import get_runtime

log = logging.getLogger(__name__)
bp = func.Blueprint()

PROBE_SCHEDULE = "0 * * * * *"
PROBE_PERIOD = timedelta(minutes=1)  # of PROBE_SCHEDULE: a shard message lives no longer
SWEEPER_SCHEDULE = "30 * * * * *"
# A probe run watches at most this much of its period: the rest covers starting and recording.
PROBE_WINDOW_MAX = PROBE_PERIOD - timedelta(seconds=8)


@bp.timer_trigger(arg_name="timer", schedule=PROBE_SCHEDULE, run_on_startup=False, use_monitor=True)
def probe_servers(timer: func.TimerRequest) -> None:
    # Imported on first use, not when the worker indexes the app (cold start).
    from failover.errors import FailoverError
    from failover.secrets import redact

    runtime = get_runtime()
    if not runtime.settings.probes_configured:
        log.info("probe: MONITORED_SERVERS and DISCOVERY_SCOPES are empty; nothing to probe")
        return
    settings = runtime.settings
    try:
        targets = runtime.prober.targets()
        window = min(settings.probe_window, PROBE_WINDOW_MAX)
        if len(targets) <= settings.probe_shard_size:
            report = runtime.prober.run_once(targets=targets, window=window)
            log.info("probe run: %s", report.summary())
            return
        from failover.shards import plan

        shards = plan(targets, shard_size=settings.probe_shard_size, issued_at=runtime.clock(), window=window)
        sent = runtime.shard_queue.send(shards, ttl=PROBE_PERIOD)
    except FailoverError as exc:
        log.warning("probe run failed, next tick retries: %s", redact(str(exc)))
        return
    log.info("probe fan-out: %d servers in %d shard message(s)", len(targets), sent)


# The sweeper runs every minute: a run takes new items for 45 s, so it ends within its period even
# with reconciliation's own bound (20 s) after it; what is left is due for the next run.
SWEEP_BUDGET = timedelta(seconds=45)


@bp.timer_trigger(arg_name="timer", schedule=SWEEPER_SCHEDULE, run_on_startup=False, use_monitor=True)
def sweep_outbox(timer: func.TimerRequest) -> None:
    from failover.errors import FailoverError
    from failover.secrets import redact

    try:
        report = get_runtime().responder.sweep(budget=SWEEP_BUDGET)
    except FailoverError as exc:
        log.warning("sweeper run failed, next tick retries: %s", redact(str(exc)))
        return
    log.info("sweeper: %s", report)
