"""Local stand-ins for the Azure services: Azurite (Table storage) and redis-server, on loopback.

Layer: local tooling, never deployed. Used by the tests, `make serve` and the drill to start what
is not already running. It installs Azurite from npm into `.cache/node` when missing and never
downloads anything else. Every process it starts is stopped by `stop()`.
"""

from __future__ import annotations

import contextlib
import logging
import os
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


def azurite_connection_string(port: int) -> str:
    if port == 10002:
        return "UseDevelopmentStorage=true"
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"TableEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    )


def azurite_binary() -> Path:
    """The azurite-table entry point, installed from npm into .cache/node on first use."""
    binary = NODE_DIR / "node_modules" / ".bin" / "azurite-table"
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


@dataclass
class LocalServices:
    """Processes started here, so they can all be stopped together."""

    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    temp_dirs: list[str] = field(default_factory=list)

    def azurite(self, port: int = 10002) -> str:
        """Azurite's Table service on `port` (started unless something listens there already)."""
        if not port_open(port):
            workdir = tempfile.mkdtemp(prefix="azurite-")
            self.temp_dirs.append(workdir)
            process = subprocess.Popen(
                [
                    str(azurite_binary()),
                    "--tableHost",
                    "127.0.0.1",
                    "--tablePort",
                    str(port),
                    "--inMemoryPersistence",
                    "--disableTelemetry",
                    "--skipApiVersionCheck",
                ],
                cwd=workdir,  # in-memory mode refuses --location; keep any stray file out of the tree
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.processes.append(process)
            wait_for_port(port, seconds=30, process=process)
            log.info("azurite started on 127.0.0.1:%d", port)
        return azurite_connection_string(port)

    def redis(self, port: int | None = None) -> str:
        """A throwaway redis-server on loopback that keeps nothing on disk."""
        port = port or free_port()
        if not port_open(port):
            binary = shutil.which("redis-server")
            if binary is None:
                raise RuntimeError("redis-server is missing: apt-get install redis-server")
            workdir = tempfile.mkdtemp(prefix="redis-")
            self.temp_dirs.append(workdir)
            process = subprocess.Popen(
                [
                    binary,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    workdir,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.processes.append(process)
            wait_for_port(port, seconds=10, process=process)
        return f"redis://127.0.0.1:{port}/0"

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
        self.processes.clear()
        for directory in self.temp_dirs:
            shutil.rmtree(directory, ignore_errors=True)
        self.temp_dirs.clear()


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")
