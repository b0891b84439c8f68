"""Driver errors against the real local PostgreSQL never carry a password past `failover.secrets`.

Issue 13, finding 4: a conninfo with an unquoted space in the password (`password=ab cd`) makes
libpq quote the second half in its error (`missing "=" after "cd"`); that fragment reached
/api/health, the log and a stored signal.
"""

from __future__ import annotations

import logging
import uuid

import psycopg
import pytest

from failover.adapters.postgres import PostgresProbe
from failover.secrets import redact

pytestmark = pytest.mark.integration


def _password() -> tuple[str, str]:
    return f"Ab{uuid.uuid4().hex[:8]}", f"Cd{uuid.uuid4().hex[:8]}"


def test_a_libpq_error_for_an_unquoted_space_in_the_password_is_redacted(pg_pair):
    first, second = _password()
    conninfo = f"{pg_pair.conninfo()} password={first} {second}"
    with pytest.raises(psycopg.Error) as caught:
        psycopg.connect(conninfo, connect_timeout=2)
    raw = str(caught.value)
    assert second in raw  # the driver's own text does quote the fragment
    for text in (
        redact(raw),
        redact(f"{type(caught.value).__name__}: {raw}", limit=10_000),
        redact(repr(raw)),
    ):
        assert first not in text and second not in text
        assert "connection info string" in text  # what went wrong stays readable


def test_the_probe_reports_and_logs_no_fragment_of_such_a_password(pg_pair, caplog):
    first, second = _password()
    conninfo = f"{pg_pair.conninfo()} password={first} {second}"
    probe = PostgresProbe(lambda server: conninfo, None, probe_id=f"leak-{uuid.uuid4().hex[:8]}")
    caplog.set_level(logging.DEBUG)
    try:
        check = probe.check("pg-leak-01")
    finally:
        probe.close()
    assert not check.connected
    for text in (check.error or "", repr(check), caplog.text):
        assert first not in text and second not in text
