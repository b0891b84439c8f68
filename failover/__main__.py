"""`python -m failover ...`: the incident lookup CLI (see `failover.cli`).

Layer: edge entry point. Runs the CLI only when executed as a program; importing it does nothing.
"""

from __future__ import annotations

import sys

from failover.cli import main

if __name__ == "__main__":
    sys.exit(main())
