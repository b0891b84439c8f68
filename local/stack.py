"""The whole product on one machine: local services plus the app served by the local runner.

Layer: local tooling, never deployed. Starts, on loopback only, whatever the environment does not
already provide: Azurite (Table storage and queues), redis-server (or with `LOCAL_REDIS=cluster` a
3-primary Redis Cluster), a real PostgreSQL primary and synchronous standby, the management API
emulator backed by that pair, a Teams Workflows webhook sink, and `function_app` served by
`local.runner.FunctionHost`. Settings given in the environment win (a real Teams webhook, another
Redis); `stop()` stops exactly what was started here.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.services import ROOT, LocalServices, azurite_connection_string, free_port, port_open
from local.teams_sink import TeamsSink

log = logging.getLogger(__name__)

SUBSCRIPTION = "00000000-0000-0000-0000-00000000d0d0"
RESOURCE_GROUP = "rg-drill"
SERVER = "pg-drill-01"
FUNCTION_KEY_SETTING = "LOCAL_FUNCTION_KEY"
LOCAL_REDIS_SETTING = "LOCAL_REDIS"  # standalone (default) or cluster: what to start when REDIS_URL is unset
Progress = Callable[[str], None]


@dataclass
class LocalStack:
    """What is running, and how to reach it. Secrets stay in `env`, which is never printed."""

    env: dict[str, str] = field(default_factory=dict)
    services: LocalServices = field(default_factory=LocalServices)
    pair: Any = None
    emulator: Any = None
    sink: Any = None
    host: Any = None
    resource_id: str | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pgfailover-")))
    _stoppers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return str(self.host.base_url)

    @property
    def function_key(self) -> str:
        return self.env[FUNCTION_KEY_SETTING]

    def stop(self) -> None:
        """Stop everything started here, newest first; never raises."""
        for stopper in reversed(self._stoppers):
            try:
                stopper()
            except Exception:  # stopping must reach every process even if one refuses
                log.exception("stopping a local service failed")
        self._stoppers.clear()
        self.services.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_stack(
    given: Mapping[str, str] | None = None,
    *,
    port: int = 7071,
    with_database: bool = True,
    settings: Mapping[str, str] | None = None,
    progress: Progress = lambda message: None,
) -> LocalStack:
    """Start what `given` (the environment) does not provide, then serve the app.

    `settings` are defaults for the app (probe intervals, quiet period) that `given` overrides.
    """
    given = dict(os.environ if given is None else given)
    stack = LocalStack(env={**(settings or {})})
    stack.workdir.chmod(0o755)  # PostgreSQL runs as the postgres user and must reach its folder
    try:
        for start in [_storage, _redis, _teams] + ([_database_and_arm] if with_database else []):
            start(stack, given, progress)
        stack.env.update(given)  # settings given win over the defaults and the services started here
        stack.env[FUNCTION_KEY_SETTING] = given.get(FUNCTION_KEY_SETTING) or secrets.token_urlsafe(24)
        _serve(stack, port, progress)
    except BaseException:
        stack.stop()
        raise
    return stack


def _storage(stack: LocalStack, given: Mapping[str, str], progress: Progress) -> None:
    if given.get("AzureWebJobsStorage"):
        return
    table_port, queue_port = free_port(), free_port()
    progress(f"starting Azurite (Table storage 127.0.0.1:{table_port}, queues 127.0.0.1:{queue_port})")
    stack.services.azurite(table_port)
    stack.services.azurite_queue(queue_port)
    stack.env["AzureWebJobsStorage"] = azurite_connection_string(table_port, queue_port)


def _redis(stack: LocalStack, given: Mapping[str, str], progress: Progress) -> None:
    """A standalone redis-server, or with `LOCAL_REDIS=cluster` a 3-primary Redis Cluster."""
    if given.get("REDIS_URL"):
        return
    mode = (given.get(LOCAL_REDIS_SETTING) or "standalone").strip().lower()
    if mode not in ("standalone", "cluster"):
        raise RuntimeError(f"{LOCAL_REDIS_SETTING}: expected standalone or cluster")
    cluster = mode == "cluster"
    progress(f"starting {'a Redis Cluster (3 primaries)' if cluster else 'redis-server'} on loopback")
    stack.env["REDIS_URL"] = stack.services.redis_cluster(3) if cluster else stack.services.redis()
    if cluster:
        stack.env["REDIS_CLUSTER"] = "true"


def _teams(stack: LocalStack, given: Mapping[str, str], progress: Progress) -> None:
    if given.get("TEAMS_WEBHOOK_URL") or given.get("TEAMS_ROUTES"):
        return
    progress("starting the Teams webhook sink on loopback")
    stack.sink = TeamsSink().start()
    stack._stoppers.append(stack.sink.stop)
    stack.env["TEAMS_WEBHOOK_URL"] = stack.sink.url


def _database_and_arm(stack: LocalStack, given: Mapping[str, str], progress: Progress) -> None:
    if given.get("MONITORED_SERVERS") or given.get("DISCOVERY_SCOPES"):
        return
    from local import pgpair
    from local.arm_emulator import ArmEmulator

    password = secrets.token_urlsafe(18)
    progress("starting PostgreSQL 15: a primary and a synchronous hot standby")
    stack.pair = pgpair.start_pair(stack.workdir / "pg", password=password)
    stack._stoppers.append(lambda: pgpair.stop_pair(stack.pair))
    progress("starting the management API emulator (Microsoft.DBforPostgreSQL/flexibleServers)")
    stack.emulator = ArmEmulator(subscription_id=SUBSCRIPTION, watchdog_interval=0.25, min_phase_seconds=0.5)
    stack.emulator.start()
    stack._stoppers.append(lambda: stack.emulator.stop(timeout=30))
    stack.resource_id = stack.emulator.add_server(RESOURCE_GROUP, SERVER, pair=stack.pair)
    stack.env.update(
        {
            "MONITORED_SERVERS": stack.resource_id,
            "ARM_ENDPOINT": stack.emulator.base_url,
            "PG_AUTH": "password",
            "PG_PASSWORD": password,
            "PG_CONNINFO_OVERRIDES": json.dumps({SERVER: stack.pair.conninfo()}),
            "PG_CREATE_HEARTBEAT_TABLE": "true",
        }
    )


def _serve(stack: LocalStack, port: int, progress: Progress) -> None:
    import function_app
    from handlers._runtime import set_runtime
    from local.runner import FunctionHost, QueueOptions, function_keys_from_env

    if port and port_open(port):
        raise RuntimeError(f"127.0.0.1:{port} is taken; choose another port")
    os.environ.update(stack.env)
    set_runtime(None)  # the app builds its runtime from these settings on first use
    stack.host = FunctionHost(
        function_app.app,
        queue_options=QueueOptions.from_host_json(ROOT / "host.json"),
        function_key=stack.function_key,
        function_keys=function_keys_from_env(os.environ),
        port=port,
        run_timers=True,
    )
    stack.host.start()
    stack._stoppers.append(stack.host.stop)
    os.environ.setdefault("PUBLIC_BASE_URL", stack.host.base_url)
    stack.env.setdefault("PUBLIC_BASE_URL", stack.host.base_url)
    progress(f"serving the app on {stack.host.base_url}")
