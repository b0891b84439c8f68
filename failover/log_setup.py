"""Log hygiene for every process that runs the app: secrets redacted, third-party chatter quiet.

Layer: wiring (called by `failover.wiring.build_runtime` and the local runner). It sets logger
levels and installs `failover.secrets` redaction; it must not add handlers or formatters (the
Functions worker and the local runner own those), touch the app's own loggers, or do I/O.

The Azure SDK logs every HTTP request and response at INFO (`azure.core.pipeline.policies.
http_logging_policy`), urllib3 every connection; in a storm that is most of what Application
Insights would bill. `host.json` cannot quiet them: its `logging.logLevel` categories name the
host's own (.NET) loggers, and a Python worker's records all arrive under `Function.<name>.User`.
So the levels are set here, on the Python loggers themselves.
"""

from __future__ import annotations

import logging

from failover.secrets import install_log_redaction

THIRD_PARTY_LOGGERS = ("azure", "urllib3", "requests", "redis", "psycopg", "msal")
THIRD_PARTY_LEVEL = logging.WARNING


def configure_logging() -> None:
    """Redact every record and keep third-party loggers at WARNING (idempotent)."""
    install_log_redaction()
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(THIRD_PARTY_LEVEL)
