"""The storm's clients, in a process of their own: N workers POSTing deliveries as Azure would.

Layer: benchmark support. Reads the deliveries (JSON lines: id, kind, body) and sends them in order
with `--workers` threads, each with its own keep-alive session, the Monitor ones to
`/api/alerts` and the Event Grid ones to the Event Grid webhook. Each request carries its id in
`x-bench-id`, so the host can tie what it did (and the Teams card it posted) to the request. Writes
one JSON object per request: id, status, send and answer times (time.time()), the answer's body.
Bounded by count (each delivery once) and by `--deadline` seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import requests

EVENT_GRID_PATH = "/runtime/webhooks/eventgrid?functionName=on_resource_event"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--deadline", type=float, default=600.0)
    args = parser.parse_args(argv)
    key = os.environ["BENCH_FUNCTION_KEY"]
    deliveries = [json.loads(line) for line in Path(args.input).read_text().splitlines() if line]
    results: list[dict[str, Any]] = []
    lock = threading.Lock()
    position = iter(range(len(deliveries)))
    stop_at = time.monotonic() + args.deadline

    def worker() -> None:
        session = requests.Session()
        session.trust_env = False
        while time.monotonic() < stop_at:
            with lock:
                index = next(position, None)
            if index is None:
                return
            item = deliveries[index]
            headers = {
                "x-functions-key": key,
                "x-bench-id": str(item["id"]),
                "Content-Type": "application/json",
            }
            if item["kind"] == "alert":
                url = args.base + "/api/alerts"
            else:
                url = args.base + EVENT_GRID_PATH
                headers["aeg-event-type"] = "Notification"
            sent = time.time()
            try:
                response = session.post(url, data=item["body"].encode(), headers=headers, timeout=(3, 120))
                status, text = response.status_code, response.text
            except requests.RequestException as error:
                status, text = 0, type(error).__name__
            done = time.time()
            with lock:
                results.append({"id": item["id"], "status": status, "sent": sent, "done": done, "body": text})

    threads = [threading.Thread(target=worker, name=f"client-{n}") for n in range(args.workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=args.deadline + 180)
    cpu = os.times()
    Path(args.output).write_text(
        json.dumps(
            {
                "results": results,
                "cpu_seconds": cpu.user + cpu.system,
                "complete": len(results) == len(deliveries),
            }
        )
    )
    return 0 if len(results) == len(deliveries) else 1


if __name__ == "__main__":
    raise SystemExit(main())
