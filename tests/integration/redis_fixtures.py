"""Throwaway `redis-server` processes for tests, on free loopback ports: standalone and cluster.

Layer: test support. Starts the Debian `redis-server` binary with no persistence
(`--save "" --appendonly no`) in a temporary directory, bound to 127.0.0.1 only, and never touches
the system Redis on 6379. `stop()` and `start()` take the server down and bring it back on the
same port, so tests can check that a client recovers. The 3-primary Redis Cluster is
`local.services.LocalRedisCluster` (the one place that starts clusters, shared with the drill),
started once per session and flushed before each test that uses it.

Use the fixtures by importing them into a test module or a conftest::

    # registers the fixture `redis_server`
    from tests.integration.redis_fixtures import redis_server_fixture  # noqa: F401
    # `redis_backend`: every test runs twice, on a standalone server and on the cluster
    from tests.integration.redis_fixtures import redis_backend_fixture, redis_cluster_fixture  # noqa: F401
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

from local.services import LocalRedisCluster, free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class RedisServer:
    """One `redis-server` child process; `start()` / `stop()` may be called repeatedly."""

    def __init__(self, port: int | None = None, *, password: str | None = None, extra: tuple[str, ...] = ()):
        self.port = port or free_port()
        self.password = password
        self.extra = extra
        self.workdir = Path(tempfile.mkdtemp(prefix="redis-test-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self, **kwargs: object) -> redis.Redis:
        """A plain client for test set-up and assertions (decoded responses, short timeouts)."""
        options: dict[str, object] = {
            "decode_responses": True,
            "socket_timeout": 2,
            "socket_connect_timeout": 2,
        }
        options.update(kwargs)
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, **options)  # type: ignore[arg-type]

    def start(self, timeout: float = 10.0) -> RedisServer:
        if self.process is not None and self.process.poll() is None:
            return self
        if not Path(REDIS_SERVER).exists():
            pytest.fail(f"redis-server not found at {REDIS_SERVER}: apt-get install redis-server")
        args = [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--loglevel", "warning",
            "--logfile", str(self.workdir / "redis.log"),
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        args += list(self.extra)
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"redis-server exited with {self.process.returncode} on port {self.port}: {log}")
            if _port_open(self.port):
                with contextlib.suppress(redis.RedisError), self.client() as probe:
                    if probe.ping():
                        return self
            time.sleep(0.02)
        self.stop()
        pytest.fail(f"redis-server did not answer on 127.0.0.1:{self.port} within {timeout} s")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait until the port is closed."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
        deadline = time.monotonic() + timeout
        while _port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.02)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open but nothing answers."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGCONT)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.resume()
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture(name="redis_server")
def redis_server_fixture() -> Iterator[RedisServer]:
    """A fresh, empty redis-server for one test (about 20 ms to start)."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module", name="shared_redis_server")
def shared_redis_server_fixture() -> Iterator[RedisServer]:
    """One redis-server for a whole module; tests must use their own keys or flush it."""
    with RedisServer() as server:
        yield server


class RedisBackend:
    """One Redis a test runs against, standalone or cluster, with an admin client for assertions."""

    def __init__(self, kind: str, url: str, *, server: RedisServer | None = None) -> None:
        self.kind = kind
        self.url = url
        self.server = server
        self._admin: redis.Redis | RedisCluster | None = None

    @property
    def clustered(self) -> bool:
        return self.kind == "cluster"

    def admin(self) -> redis.Redis | RedisCluster:
        """A decoded client for set-up and assertions (a cluster client on a cluster)."""
        if self._admin is None:
            options = {"decode_responses": True, "socket_timeout": 2, "socket_connect_timeout": 2}
            factory = RedisCluster if self.clustered else redis.Redis
            self._admin = factory.from_url(self.url, **options)
        return self._admin

    def nodes(self) -> list[redis.Redis]:
        """Every primary node (the one node when standalone)."""
        admin = self.admin()
        if isinstance(admin, RedisCluster):
            return [admin.get_redis_connection(node) for node in admin.get_primaries()]
        return [admin]

    def subscribe(self, channel: str) -> Any:
        """A pubsub subscribed to `channel`, confirmed before returning (cluster: `RedisCluster.pubsub()`)."""
        pubsub = self.admin().pubsub()
        pubsub.subscribe(channel)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.1)
            if message is not None and message["type"] == "subscribe":
                return pubsub
        pytest.fail(f"no subscribe confirmation on {self.kind} redis")

    def flush(self) -> None:
        for node in self.nodes():
            node.flushall()

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None


@pytest.fixture(scope="session", name="redis_cluster")
def redis_cluster_fixture() -> Iterator[LocalRedisCluster]:
    """One 3-primary Redis Cluster on loopback for the whole session (about 2 s to start)."""
    cluster = LocalRedisCluster(3).start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["standalone", "cluster"], name="redis_backend")
def redis_backend_fixture(request: pytest.FixtureRequest) -> Iterator[RedisBackend]:
    """The test runs on a fresh standalone redis-server, then on the (flushed) session cluster."""
    if request.param == "standalone":
        with RedisServer() as server:
            backend = RedisBackend("standalone", server.url, server=server)
            yield backend
            backend.close()
        return
    cluster: LocalRedisCluster = request.getfixturevalue("redis_cluster")
    backend = RedisBackend("cluster", cluster.url)
    backend.flush()
    yield backend
    backend.close()


def next_message(pubsub: Any, timeout: float = 3.0) -> dict[str, Any] | None:
    """The next message a subscriber receives within `timeout` seconds (None: none came)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message is not None:
            return dict(message)
    return None
