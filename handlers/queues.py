"""Queue functions: `probe_shard` watches one shard of the fleet for one window.

Layer: edge. The probe timer (`handlers.timers.probe_servers`) enqueues one message per shard on
the `probe-shards` queue of the app's storage account; Azure Functions hands each message to one
instance (hidden from the others while it runs) and adds instances as the queue grows. host.json
(`extensions.queues`) sets how many shards one instance takes at once.

What it must not do: raise for a malformed or late message (it would be retried and then moved to
the poison queue for nothing: such a message is logged and dropped), or watch past the message's
`not_after` by more than the recording grace (the next tick's message for the same servers starts
after that). What one server's checks could not do is on the report and on /api/health, never an
exception; an unexpected error raises, and the host retries the message (within what is left of
its window) up to `maxDequeueCount`.
"""

from __future__ import annotations

import logging

import azure.functions as func

from failover.shards import PROBE_QUEUE
from handlers._runtime import get_runtime

log = logging.getLogger(__name__)
bp = func.Blueprint()


@bp.queue_trigger(arg_name="message", queue_name=PROBE_QUEUE, connection="AzureWebJobsStorage")
def probe_shard(message: func.QueueMessage) -> None:
    from failover.shards import Shard

    try:
        shard = Shard.from_json(message.get_body().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        log.error("probe shard message %s dropped: %s", message.id, exc)
        return
    runtime = get_runtime()
    window = shard.window_at(
        runtime.clock(), min(runtime.settings.probe_window, shard.not_after - shard.issued_at)
    )
    if window is None:
        log.warning(
            "probe shard %d/%d of %s arrived after its window; the next tick covers its servers",
            shard.index + 1,
            shard.count,
            shard.issued_at.isoformat(),
        )
        return
    report = runtime.prober.run_once(targets=shard.targets, window=window)
    log.info("probe shard %d/%d: %s", shard.index + 1, shard.count, report.summary())
