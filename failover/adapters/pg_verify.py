"""`DatabaseVerifier` on psycopg: what the new primary itself says after a failover.

Layer: adapter (edge). The writer check is the availability probe's own (`PostgresProbe.check`:
connect through the writer endpoint, not in recovery, one heartbeat write committed); the catalog
reads run on the probe's kept session (`PostgresProbe.read`: same conninfo, token, timeouts):
- logical replication slots (`pg_replication_slots`, slot_type logical), with the `synced` and
  `failover` columns where the server has them (PostgreSQL 17 and later);
- user tables holding data (`pg_relation_size` > 0) with no planner statistics (`pg_stats`),
  counted, a few named (the probe's own heartbeat table aside; only tables the probe's role may read,
  as `pg_stats` shows no others). Planner statistics live in `pg_statistic`, which physical
  replication copies: the standby had the old primary's, so a table without them was never
  analyzed, before the failover too;
- tables with planner statistics whose activity counters (`pg_stat_user_tables`) know no ANALYZE:
  the cumulative statistics autovacuum schedules by are not replicated and start from zero after a
  promotion (or a crash, or `pg_stat_reset`), so autovacuum is blind to those tables for a while.

It must not write anything but the probe's heartbeat, raise from `inspect`, or put driver text,
a password or a conninfo into a value or a log line (failures carry the probe's classified reason).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from failover.adapters.postgres import HEARTBEAT_TABLE, PostgresProbe, ProbeReadError
from failover.ports import DbObservation, SlotView

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger(__name__)

SLOT_COLUMNS_SINCE = 170000  # server_version_num from which pg_replication_slots has synced/failover
_SLOTS_SQL = """
SELECT slot_name, plugin, active{flags}
FROM pg_catalog.pg_replication_slots
WHERE slot_type = 'logical'
ORDER BY slot_name
LIMIT %s
"""
_MISSING_STATS_SQL = """
SELECT n.nspname || '.' || c.relname, count(*) OVER ()
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%%'
  AND c.relname <> %s
  AND pg_catalog.has_table_privilege(c.oid, 'SELECT')
  AND pg_catalog.pg_relation_size(c.oid) > 0
  AND NOT EXISTS (
      SELECT 1 FROM pg_catalog.pg_stats s WHERE s.schemaname = n.nspname AND s.tablename = c.relname
  )
ORDER BY 1
LIMIT %s
"""
_RESET_COUNTERS_SQL = """
SELECT count(*)
FROM pg_catalog.pg_stat_user_tables s
WHERE s.relname <> %s
  AND s.last_analyze IS NULL
  AND s.last_autoanalyze IS NULL
  AND pg_catalog.has_table_privilege(s.relid, 'SELECT')
  AND pg_catalog.pg_relation_size(s.relid) > 0
  AND EXISTS (
      SELECT 1 FROM pg_catalog.pg_stats p WHERE p.schemaname = s.schemaname AND p.tablename = s.relname
  )
"""


@dataclass(frozen=True)
class _Catalog:
    slots: tuple[SlotView, ...]
    missing: tuple[str, ...]
    missing_count: int
    reset_counters: int


class PostgresVerifier:
    """`DatabaseVerifier`: the writer check, then the slots and statistics of the new primary."""

    def __init__(self, probe: PostgresProbe, *, max_slots: int = 100, names_shown: int = 5) -> None:
        self._probe = probe
        self._max_slots = max_slots
        self._names_shown = names_shown

    def inspect(self, server: str) -> DbObservation:
        check = self._probe.check(server)
        if not check.connected:
            return DbObservation(reachable=False, error=check.error)
        if not check.writable:
            return DbObservation(
                reachable=True, writable=False, in_recovery=check.in_recovery, error=check.error
            )
        try:
            catalog = self._probe.read(server, self._read_catalog)
        except ProbeReadError as error:
            logger.warning("verification: server %s: catalog not read (%s)", server, error)
            return DbObservation(
                reachable=True, writable=True, in_recovery=False, catalog_read=False, error=str(error)
            )
        logger.info(
            "verification: server %s: %d logical slot(s), %d table(s) never analyzed,"
            " %d with restarted activity counters",
            server,
            len(catalog.slots),
            catalog.missing_count,
            catalog.reset_counters,
        )
        return DbObservation(
            reachable=True,
            writable=True,
            in_recovery=False,
            slots=catalog.slots,
            tables_without_statistics=catalog.missing,
            tables_without_statistics_count=catalog.missing_count,
            tables_with_reset_counters=catalog.reset_counters,
        )

    def _read_catalog(self, conn: psycopg.Connection[Any]) -> _Catalog:
        version_row = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
        version = int(version_row[0]) if version_row else 0
        has_flags = version >= SLOT_COLUMNS_SINCE
        sql = _SLOTS_SQL.format(flags=", synced, failover" if has_flags else "")
        slots = tuple(
            SlotView(
                name=str(row[0]),
                plugin=None if row[1] is None else str(row[1]),
                active=bool(row[2]),
                synced=bool(row[3]) if has_flags else None,
                failover=bool(row[4]) if has_flags else None,
            )
            for row in conn.execute(sql, (self._max_slots,)).fetchall()
        )
        rows = conn.execute(_MISSING_STATS_SQL, (HEARTBEAT_TABLE, self._names_shown)).fetchall()
        reset = conn.execute(_RESET_COUNTERS_SQL, (HEARTBEAT_TABLE,)).fetchone()
        return _Catalog(
            slots=slots,
            missing=tuple(str(r[0]) for r in rows),
            missing_count=int(rows[0][1]) if rows else 0,
            reset_counters=int(reset[0]) if reset else 0,
        )
