"""Local stand-ins for the Azure services: Azurite (Table and Queue storage) and Redis, on loopback.

Layer: local tooling, never deployed. Used by the tests, `make serve` and the drill to start what
is not already running: standalone redis-server, or a 3-primary Redis Cluster (`LocalRedisCluster`,
also used by the test fixtures). It installs Azurite from npm into `.cache/node` when missing and never
downloads anything else. Every process it starts is stopped by `stop()`.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / ".cache" / "node"
AZURITE_VERSION = "3.35.0"  # the newest that runs on Node 20
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented; not a secret).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.3) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, *, seconds: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(port):
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {seconds:.0f} s")


def azurite_connection_string(port: int, queue_port: int | None = None) -> str:
    """Azurite's Table service on `port` (and its Queue service on `queue_port`, when given)."""
    if port == 10002 and queue_port in (None, 10001):
        return "UseDevelopmentStorage=true"
    queue = f";QueueEndpoint=http://127.0.0.1:{queue_port}/{AZURITE_ACCOUNT}" if queue_port else ""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"TableEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT}{queue}"
    )


def azurite_binary(service: str = "table") -> Path:
    """An Azurite entry point (azurite-table, azurite-queue), installed from npm on first use."""
    binary = NODE_DIR / "node_modules" / ".bin" / f"azurite-{service}"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is missing: install Node.js 20 (Debian package nodejs npm) to run Azurite")
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    log.info("installing azurite %s from npm into %s", AZURITE_VERSION, NODE_DIR)
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(NODE_DIR), f"azurite@{AZURITE_VERSION}"],
        check=True,
        timeout=600,
        stdout=subprocess.DEVNULL,
    )
    return binary


def _redis_server(port: int, workdir: str | Path, *extra: str) -> subprocess.Popen[bytes]:
    """A redis-server on 127.0.0.1:`port` that keeps nothing on disk; `extra` adds options."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is missing: apt-get install redis-server")
    argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    return subprocess.Popen(
        [*argv, "--dir", str(workdir), *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


class LocalRedisCluster:
    """A Redis Cluster of `masters` primaries (no replicas) on loopback, nothing kept on disk.

    Each node gets a free client port and a free cluster-bus port (`--cluster-port`, so a client
    port above 55535 still works); `redis-cli --cluster create` assigns the 16384 slots evenly.
    `start()` returns once every node reports `cluster_state:ok`; `stop()` removes everything.
    """

    def __init__(self, masters: int = 3) -> None:
        if masters < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 primaries")
        self.ports = tuple(free_port() for _ in range(masters))
        self.workdir = Path(tempfile.mkdtemp(prefix="redis-cluster-"))
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self, seconds: float = 30.0) -> LocalRedisCluster:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is missing: apt-get install redis-server")
        try:
            for port in self.ports:
                self.processes.append(self._node(port))
            for port, process in zip(self.ports, self.processes, strict=True):
                wait_for_port(port, seconds=10, process=process)
            nodes = [f"127.0.0.1:{port}" for port in self.ports]
            subprocess.run(
                [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
                check=True,
                timeout=seconds,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self._wait_ok(cli, seconds)
        except BaseException:
            self.stop()
            raise
        log.info("redis cluster started on 127.0.0.1 ports %s", ", ".join(map(str, self.ports)))
        return self

    def _node(self, port: int) -> subprocess.Popen[bytes]:
        node_dir = self.workdir / str(port)
        node_dir.mkdir()
        config = ["--cluster-enabled", "yes", "--cluster-port", str(free_port())]
        config += ["--cluster-config-file", str(node_dir / "nodes.conf"), "--cluster-node-timeout", "5000"]
        logs = ["--daemonize", "no", "--loglevel", "warning", "--logfile", str(node_dir / "redis.log")]
        return _redis_server(port, node_dir, *config, *logs)

    def _wait_ok(self, cli: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        pending = list(self.ports)
        while pending and time.monotonic() < deadline:
            argv = [cli, "-h", "127.0.0.1", "-p", str(pending[0]), "cluster", "info"]
            answer = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False).stdout
            if "cluster_state:ok" in answer:
                pending.pop(0)
            else:
                time.sleep(0.1)
        if pending:
            raise RuntimeError(f"redis cluster not ok after {seconds:.0f} s (node 127.0.0.1:{pending[0]})")

    def stop_node(self, index: int) -> None:
        """Stop one primary (its slots stop being served; the others keep running)."""
        _stop_process(self.processes[index])

    def stop(self) -> None:
        for process in reversed(self.processes):
            _stop_process(process)
        self.processes.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class LocalServices:
    """Processes started here, so they can all be stopped together."""

    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    temp_dirs: list[str] = field(default_factory=list)
    clusters: list[LocalRedisCluster] = field(default_factory=list)

    def azurite(self, port: int = 10002) -> str:
        """Azurite's Table service on `port` (started unless something listens there already)."""
        self._azurite("table", port)
        return azurite_connection_string(port)

    def azurite_queue(self, port: int = 10001) -> int:
        """Azurite's Queue service on `port` (started unless something listens there already)."""
        self._azurite("queue", port)
        return port

    def _azurite(self, service: str, port: int) -> None:
        if not port_open(port):
            workdir = tempfile.mkdtemp(prefix="azurite-")
            self.temp_dirs.append(workdir)
            where = [f"--{service}Host", "127.0.0.1", f"--{service}Port", str(port)]
            flags = ["--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck"]
            process = subprocess.Popen(
                [str(azurite_binary(service)), *where, *flags],
                cwd=workdir,  # in-memory mode refuses --location; keep any stray file out of the tree
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.processes.append(process)
            wait_for_port(port, seconds=30, process=process)
            log.info("azurite %s service started on 127.0.0.1:%d", service, port)

    def redis(self, port: int | None = None) -> str:
        """A throwaway redis-server on loopback that keeps nothing on disk."""
        port = port or free_port()
        if not port_open(port):
            workdir = tempfile.mkdtemp(prefix="redis-")
            self.temp_dirs.append(workdir)
            self.processes.append(_redis_server(port, workdir))
            wait_for_port(port, seconds=10, process=self.processes[-1])
        return f"redis://127.0.0.1:{port}/0"

    def redis_cluster(self, masters: int = 3) -> str:
        """A throwaway Redis Cluster of `masters` primaries on loopback; its URL names one node."""
        cluster = LocalRedisCluster(masters).start()
        self.clusters.append(cluster)
        return cluster.url

    def stop(self) -> None:
        for cluster in reversed(self.clusters):
            cluster.stop()
        self.clusters.clear()
        for process in reversed(self.processes):
            _stop_process(process)
        self.processes.clear()
        for directory in self.temp_dirs:
            shutil.rmtree(directory, ignore_errors=True)
        self.temp_dirs.clear()
