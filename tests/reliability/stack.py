"""The app served for real over loopback HTTP, with the checks every reliability test ends with.

Layer: test support (shared by tests/reliability and bench/storm.py). It serves the app's own
registered functions (a fresh `FunctionApp` holding exactly the function builders `function_app.py`
registered, because `get_functions()` works once per app) with `local.runner.FunctionHost`, installs
a runtime built by the product's own `build_runtime`, and posts deliveries the way Azure does
(action group webhook, Event Grid webhook). Every wait here is bounded by count and by time.

`check_outcome` is the common end of every fault test: every signal recorded once, every incident
consistent, every effect done exactly once (cards counted at the sink, Redis publishes counted
by a subscriber) or dead and shown on the timeline, and Redis at the newest version.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import azure.functions as func
import redis
import requests

from failover import lookups
from failover.config import Settings
from failover.model import EffectName, EffectStatus, IncidentStatus
from failover.wiring import Runtime, build_runtime
from handlers._runtime import set_runtime
from local.runner import FunctionHost
from local.teams_sink import TeamsSink
from tests.reliability.workload import ALERT, Delivery, Workload

KEY_HEADER = "x-functions-key"
EVENT_GRID_PATH = "/runtime/webhooks/eventgrid?functionName=on_resource_event"
HTTP_TIMEOUT = (3.0, 60.0)
_INCIDENT_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]~[0-9]{8}T[0-9]{6}Z")


def fresh_app() -> func.FunctionApp:
    """A FunctionApp with exactly the functions `function_app.app` registered (same builders)."""
    import function_app

    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
    app._function_builders.extend(function_app.app._function_builders)
    return app


def install_runtime(env: Mapping[str, str], clock: Callable[[], datetime] | None = None) -> Runtime:
    """The product's own runtime for these settings, installed for the handlers."""
    settings = Settings.from_env(dict(env))
    runtime = build_runtime(settings, clock=clock) if clock is not None else build_runtime(settings)
    set_runtime(runtime)
    return runtime


class Served:
    """The app on 127.0.0.1 (a free port) through the local runner, with a keyed HTTP client."""

    def __init__(self, *, key: str | None = None, max_body_bytes: int | None = None) -> None:
        self.key = key or "k-" + secrets.token_hex(16)
        options: dict[str, Any] = {"max_body_bytes": max_body_bytes} if max_body_bytes else {}
        self.host = FunctionHost(
            fresh_app(), function_key=self.key, port=0, run_timers=False, run_queues=False, **options
        )
        self._local = threading.local()

    def start(self) -> Served:
        self.host.start()
        return self

    def stop(self) -> None:
        self.host.stop()

    def __enter__(self) -> Served:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self.host.base_url

    def session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # loopback only: never a proxy
            self._local.session = session
        return session

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        key: str | None = "default",
        params: Mapping[str, str] | None = None,
    ) -> requests.Response:
        sent = dict(headers or {})
        if key == "default":
            sent[KEY_HEADER] = self.key
        elif key is not None:
            sent[KEY_HEADER] = key
        return self.session().request(
            method, self.url + path, data=body, headers=sent, params=params, timeout=HTTP_TIMEOUT
        )

    def post_alert(self, payload: Any, **kwargs: Any) -> requests.Response:
        body = json.dumps(payload).encode()
        return self.request(
            "POST", "/api/alerts", body=body, headers={"Content-Type": "application/json"}, **kwargs
        )

    def post_events(
        self, events: Any, *, event_type: str = "Notification", **kwargs: Any
    ) -> requests.Response:
        body = json.dumps(events).encode()
        headers = {"Content-Type": "application/json", "aeg-event-type": event_type}
        return self.request("POST", EVENT_GRID_PATH, body=body, headers=headers, **kwargs)

    def deliver(self, delivery: Delivery) -> requests.Response:
        if delivery.kind == ALERT:
            return self.post_alert(delivery.body)
        return self.post_events(delivery.body)


@dataclass
class Sent:
    delivery: Delivery
    status: int  # 0: no answer (connection error)
    body: Any
    started: float
    finished: float

    @property
    def failed(self) -> bool:
        """What Azure retries: the action group 408/429/5xx, Event Grid anything but 2xx."""
        return self.status == 0 or self.status >= 500 or self.status in (408, 429)


def send_all(
    served: Served,
    deliveries: Iterable[Delivery],
    *,
    workers: int = 8,
    deadline: float = 120.0,
    pace: float = 0.0,
) -> list[Sent]:
    """Deliver concurrently with `workers` clients (each pausing `pace` seconds before a delivery);
    stops sending once `deadline` seconds have passed. Answers come back in the deliveries' order."""
    stop_at = time.monotonic() + deadline

    def one(delivery: Delivery) -> Sent | None:
        if time.monotonic() > stop_at:
            return None
        if pace:
            time.sleep(pace)
        started = time.time()
        try:
            response = served.deliver(delivery)
        except requests.RequestException:
            return Sent(delivery, 0, None, started, time.time())
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = response.text
        return Sent(delivery, response.status_code, body, started, time.time())

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="client") as pool:
        results = list(pool.map(one, list(deliveries)))
    sent = [r for r in results if r is not None]
    assert len(sent) == len(results), (
        f"deadline of {deadline:.0f} s reached: {len(results) - len(sent)} unsent"
    )
    return sent


def replay_failed(served: Served, sent: list[Sent], *, rounds: int = 10, pause: float = 0.5) -> list[Sent]:
    """Azure-style retries: send again whatever failed, a bounded number of rounds (same order out)."""
    latest = list(sent)
    for _ in range(rounds):
        failed = [n for n, s in enumerate(latest) if s.failed]
        if not failed:
            break
        for n, again in zip(
            failed, send_all(served, [latest[n].delivery for n in failed], workers=4), strict=True
        ):
            latest[n] = again
        time.sleep(pause)
    return latest


class Subscriber:
    """Counts the messages on `{prefix}*:events`, reconnecting (bounded) when Redis goes away."""

    def __init__(self, port: int, *, password: str | None = None, pattern: str = "pgha:*:events") -> None:
        self.port, self.password, self.pattern = port, password, pattern
        self.messages: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self.subscriptions = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="redis-subscriber", daemon=True)

    def start(self, timeout: float = 10.0) -> Subscriber:
        self._thread.start()
        assert self.ready.wait(timeout), "the Redis subscriber could not subscribe"
        return self

    def wait_resubscribed(self, after: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.subscriptions > after and self.ready.is_set():
                return
            time.sleep(0.05)
        raise AssertionError("the Redis subscriber did not come back after the restart")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            client = redis.Redis(
                host="127.0.0.1",
                port=self.port,
                password=self.password,
                socket_timeout=1,
                socket_connect_timeout=1,
            )
            try:
                pubsub = client.pubsub()
                pubsub.psubscribe(self.pattern)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.2)
                    if message is None:
                        continue
                    if message["type"] == "psubscribe":
                        self.subscriptions += 1
                        self.ready.set()
                    elif message["type"] == "pmessage":
                        self.messages.append(json.loads(message["data"]))
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                self.ready.clear()
                self._stop.wait(0.1)
            finally:
                client.close()

    def versions(self) -> Counter[tuple[str, int]]:
        return Counter((m["server"], int(m["version"])) for m in self.messages)


@dataclass
class Outcome:
    problems: list[str] = field(default_factory=list)
    incidents: int = 0
    signals: int = 0
    cards: int = 0
    publishes: int = 0
    dead: int = 0

    def check(self) -> None:
        assert not self.problems, f"{len(self.problems)} problem(s):\n" + "\n".join(self.problems[:40])


def _cards_by_incident(sink: TeamsSink) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for received in sink.accepted:
        text = json.dumps(received.card, ensure_ascii=False, sort_keys=True)
        ids = set(_INCIDENT_ID.findall(text))
        assert len(ids) == 1, f"a card names {len(ids)} incidents: {sorted(ids)}"
        found.setdefault(ids.pop(), []).append(text)
    return found


def check_outcome(
    runtime: Runtime,
    workload: Workload,
    *,
    sink: TeamsSink | None,
    subscriber: Subscriber | None,
    resolved: bool = True,
) -> Outcome:
    """The end state every fault test must reach (see the module docstring)."""
    out = Outcome()
    store = runtime.store
    cards = _cards_by_incident(sink) if sink is not None else {}
    published = subscriber.versions() if subscriber is not None else Counter()
    cache = runtime.cache
    for server in workload.servers:
        expected = workload.expected[server]
        page = store.incidents_of_server(server, since=None, until=None, status=None, limit=50, after=None)
        state, _ = store.read_state(server)
        if state is None:
            out.problems.append(f"{server}: no state row")
            continue
        if state.signals_recorded != len(expected):
            out.problems.append(
                f"{server}: state counts {state.signals_recorded} signals, sent {len(expected)}"
            )
        recorded: list[str] = []
        for incident in page.incidents:
            out.incidents += 1
            timeline = store.timeline(incident)
            ids = [e.signal_id for e in timeline]
            recorded += ids
            if incident.signal_count != len(timeline):
                out.problems.append(
                    f"{incident.incident_id}: signal_count {incident.signal_count}"
                    f" != timeline {len(timeline)}"
                )
            if [e.at for e in timeline] != sorted(e.at for e in timeline):
                out.problems.append(f"{incident.incident_id}: timeline not in time order")
            if timeline and incident.opened_at != timeline[0].at:
                out.problems.append(f"{incident.incident_id}: opened_at is not its first signal's time")
            if resolved and incident.status is not IncidentStatus.RESOLVED:
                out.problems.append(f"{incident.incident_id}: still {incident.status.value}")
            _check_effects(runtime, incident.incident_id, incident, cards, out)
        out.signals += len(recorded)
        if Counter(recorded) != Counter(expected):
            missing, extra = expected - set(recorded), [i for i, n in Counter(recorded).items() if n > 1]
            out.problems.append(
                f"{server}: timeline != signals sent (missing {sorted(missing)}, twice {extra})"
            )
        if cache is not None:
            topology = cache.read(server)
            if int(topology.get("version") or -1) != state.topology_version:
                out.problems.append(
                    f"{server}: redis version {topology.get('version')} != newest {state.topology_version}"
                )
            epoch = cache.read_epoch(server)  # type: ignore[attr-defined]
            if (epoch or 0) != state.epoch:
                out.problems.append(f"{server}: redis epoch {epoch} != {state.epoch}")
        if subscriber is not None:
            mine = {v: n for (s, v), n in published.items() if s == server}
            out.publishes += sum(mine.values())
            twice = sorted(v for v, n in mine.items() if n > 1)
            if twice:
                out.problems.append(f"{server}: versions {twice} published more than once")
            if state.topology_version not in mine:
                out.problems.append(f"{server}: newest version {state.topology_version} never published")
    pending = store.pending_work_count()
    if pending:
        out.problems.append(f"{pending} outbox pointer(s) still pending")
    return out


def _check_effects(
    runtime: Runtime, incident_id: str, incident: Any, cards: dict[str, list[str]], out: Outcome
) -> None:
    effects = runtime.store.effects_of(incident_id)
    shown: set[str] | None = None
    done_cards = 0
    for effect in effects:
        if effect.status is EffectStatus.DEAD:
            out.dead += 1
            if shown is None:
                body = lookups.get_incident(runtime.store, runtime.settings, incident_id)
                shown = {e["signal_id"] for e in body["timeline"] if e["kind"] == "effect_dead"}
            marker = f"effect:{incident_id}:{effect.transition.value}:{effect.name.value}"
            if marker not in shown:
                out.problems.append(f"{marker}: dead but not shown on the timeline")
        elif effect.status not in (EffectStatus.DONE, EffectStatus.SKIPPED):
            out.problems.append(
                f"{incident_id} {effect.transition.value}/{effect.name.value}: {effect.status.value}"
                f" after {effect.attempts} attempt(s): {effect.last_error}"
            )
        if effect.name is EffectName.NOTIFY_TEAMS and effect.status is EffectStatus.DONE:
            done_cards += 1
    posted = cards.get(incident_id, [])
    out.cards += len(posted)
    if "teams" in runtime.responder.integrations.notify.channels:
        if len(posted) != done_cards:
            out.problems.append(f"{incident_id}: {len(posted)} card(s) at the sink, {done_cards} done")
        if len(set(posted)) != len(posted):
            out.problems.append(f"{incident_id}: the same card posted twice")
        statuses = {n.transition: n.status for n in incident.notifications if n.channel == "teams"}
        for effect in effects:
            if (
                effect.name is EffectName.NOTIFY_TEAMS
                and statuses.get(effect.transition) is not effect.status
            ):
                out.problems.append(
                    f"{incident_id}: notification {effect.transition.value} shows"
                    f" {statuses.get(effect.transition)}, effect is {effect.status.value}"
                )


def settle_everything(runtime: Runtime, advance: Callable[[float], None], *, rounds: int = 40) -> int:
    """Run the sweeper with the clock moved on until no work is due (bounded); returns the rounds used.

    Time also passes while a sweep runs (each clock reading moves it a second, as a real sweep takes
    time), so the one-post-a-second pacing of each channel lets every held card out.
    """
    clock = runtime.clock
    ticking = hasattr(clock, "tick")
    if ticking:
        clock.tick = 1.0  # type: ignore[attr-defined]
    try:
        for n in range(rounds):
            advance(3600)
            report = runtime.responder.sweep(limit=1000)
            if report.examined == 0 and runtime.store.pending_work_count() == 0:
                return n
        return rounds
    finally:
        if ticking:
            clock.tick = 0.0  # type: ignore[attr-defined]


@contextmanager
def started(*things: Any) -> Iterator[None]:
    """Stop what was started, in reverse order, whatever happens."""
    try:
        yield
    finally:
        for thing in reversed(things):
            thing.stop()
