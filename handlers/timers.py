"""Timer functions: the probe (management API and PostgreSQL) and the outbox sweeper.

Layer: edge. Schedules are 6-field NCRONTAB (seconds first). The probe runs every minute and
samples within the invocation (see failover.probing); the sweeper retries due effects and settles
quiet incidents. A failing run is logged and left to the next tick; timers never lose records.
"""

from __future__ import annotations

import logging

import azure.functions as func

from failover.errors import FailoverError, redact
from handlers._runtime import get_runtime

log = logging.getLogger(__name__)
bp = func.Blueprint()

PROBE_SCHEDULE = "0 * * * * *"
SWEEPER_SCHEDULE = "30 * * * * *"


@bp.timer_trigger(arg_name="timer", schedule=PROBE_SCHEDULE, run_on_startup=False, use_monitor=True)
def probe_servers(timer: func.TimerRequest) -> None:
    runtime = get_runtime()
    if not runtime.settings.probes_configured:
        log.info("probe: MONITORED_SERVERS and DISCOVERY_SCOPES are empty; nothing to probe")
        return
    try:
        report = runtime.prober.run_once()
    except FailoverError as exc:
        log.warning("probe run failed, next tick retries: %s", redact(str(exc)))
        return
    log.info("probe run: %s", report.summary())


@bp.timer_trigger(arg_name="timer", schedule=SWEEPER_SCHEDULE, run_on_startup=False, use_monitor=True)
def sweep_outbox(timer: func.TimerRequest) -> None:
    try:
        report = get_runtime().responder.sweep()
    except FailoverError as exc:
        log.warning("sweeper run failed, next tick retries: %s", redact(str(exc)))
        return
    log.info("sweeper: %s", report)
