"""`make serve`: the app on 127.0.0.1:7071 with local services for whatever the environment lacks.

Layer: local tooling, never deployed. Settings given in the environment win (a real Teams
webhook, another Redis, your own Table storage); local services start only for what is missing.
Everything started here stops on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from local.stack import FUNCTION_KEY_SETTING, start_stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "7071")))
    parser.add_argument("--no-database", action="store_true", help="no local PostgreSQL pair and emulator")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for stopping in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stopping, lambda signum, frame: stop.set())
    own_key = bool(os.environ.get(FUNCTION_KEY_SETTING))
    stack = start_stack(port=args.port, with_database=not args.no_database, progress=print)
    try:
        print(f"\nServing on {stack.base_url}")
        if own_key:
            print('  function key: your LOCAL_FUNCTION_KEY (export KEY="$LOCAL_FUNCTION_KEY")')
        else:  # a throwaway key made for this run; a key you set yourself is never printed
            print(f"  function key generated for this run: export KEY='{stack.function_key}'")
        if stack.sink is not None:
            print("  Teams cards go to a local sink; they are printed in the log as they arrive")
        if stack.resource_id:
            print(f"  a local flexible server is watched: {stack.resource_id}")
        print("Press Ctrl-C to stop.\n")
        stop.wait()
    finally:
        print("stopping everything make serve started")
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
