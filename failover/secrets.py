"""What a secret looks like, and how every text is cleaned of secrets (design invariant 7).

Layer: pure core, no I/O. The one place that knows the shapes of secrets: connection string keys
(`AccountKey=`, `SharedAccessSignature=`), conninfo and query assignments (`password='x y'`,
`password = x`, `pwd=`, `secret=`, `client_secret=`, `sig=` and `sig%3D`, `code=`, ...), header
values (`x-functions-key:`, `Authorization:`), `Bearer` and `SharedKey` credentials, bare JWTs,
URLs with credentials (`redis://:pw@host`), webhook URLs (Logic Apps / Power Automate hosts, any
URL carrying `sig=`), the fragments of a conninfo that libpq quotes in its errors, and every value
of a setting marked secret (`Secret` registers its value when it is made).

`redact` runs in linear time: it truncates its input first, and its patterns are anchored by
look-behinds and bounded quantifiers, so no input makes them backtrack quadratically. It must not
log, raise for any input, or keep anything but the registered secret values (bounded in number).
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from urllib.parse import quote

__all__ = ["LOG_LIMIT", "MARK", "RedactingFilter", "Secret", "install_log_redaction", "redact", "register"]

MARK = "***"
LOG_LIMIT = 16_000  # characters of one log message kept (tracebacks: four times as many)
MIN_SECRET = 6  # shorter registered values would redact ordinary words
_MAX_REGISTERED = 256
_SLACK = 1024  # characters read beyond `limit`, so redaction shrinking a text still fills the answer

_NAMES = (  # names whose value is a secret wherever it is written
    "client_secret|access_token|refresh_token|id_token|sharedaccesssignature|sharedaccesskey|accountkey"
    "|sslpassword|passfile|password|passwd|pwd|secret|token|apikey|api_key|x-functions-key"
)
_KEYWORDS = f"{_NAMES}|sig|code|key"  # in assignments and queries, also these (`"code": ...` in JSON is not)
_VALUE = r"""(?:'(?:[^'\\\n]|\\.)*'?|"(?:[^"\\\n]|\\.)*"?|[^\s;&,'"<>]+)"""
_HEADERS = "x-functions-key|authorization|proxy-authorization|ocp-apim-subscription-key|x-api-key|api-key"
_WEBHOOK_HOST = re.compile(
    r"(?:^|\.)(?:logic\.azure\.com|powerautomate\.com|api\.powerplatform\.com|webhook\.office\.com)$",
    re.IGNORECASE,
)

# (pattern, replacement), applied in this order after the registered values.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Credentials in a URL's user info: redis://:pw@host, rediss://user:pw@host, https://u:p@host.
    (re.compile(r"(?i)(?<![a-z0-9+.-])([a-z][a-z0-9+.-]{0,20}://)[^\s/?#@'\"<>]*@"), rf"\1{MARK}@"),
    # `name = value` in conninfo, connection strings and queries (also URL-encoded `%3D`).
    (re.compile(rf"(?i)(?<![a-z])({_KEYWORDS})([ \t]{{0,8}}(?:=|%3D)[ \t]{{0,8}}){_VALUE}"), rf"\1\2{MARK}"),
    # `"name": value` in JSON and Python reprs.
    (
        re.compile(rf"""(?i)(["'](?:{_NAMES}|{_HEADERS})["'][ \t]{{0,8}}:[ \t]{{0,8}}){_VALUE}"""),
        rf"\1{MARK}",
    ),
    # `Header: value` lines.
    (re.compile(rf"(?i)(?<![a-z-])((?:{_HEADERS})[ \t]{{0,8}}:[ \t]{{0,8}})[^\r\n,;'\"]+"), rf"\1{MARK}"),
    # Authorization schemes.
    (re.compile(r"(?i)(?<![a-z])(bearer|sharedkeylite|sharedkey)[ \t]+[a-z0-9._~+/=:-]+"), rf"\1 {MARK}"),
    # Bare JWTs (also cut after their second segment).
    (re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*)?"), "<jwt>"),
    # The pieces of a conninfo that libpq quotes when it cannot parse one (`password=ab cd`).
    (
        re.compile(
            r'(missing "=" after |invalid connection option |invalid URI query parameter: '
            r'|invalid percent-encoded token: )"[^"\n]*"'
        ),
        rf'\1"{MARK}"',
    ),
)
_URL = re.compile(r"(?i)(?<![a-z0-9+.-])(https?://)([^\s/?#'\"<>]+)([^\s'\"<>]*)")
_SIGNED = re.compile(r"(?i)(?<![a-z])sig(?:=|%3D)")


class _Registry:
    """The values of settings marked secret; the newest `_MAX_REGISTERED` are kept."""

    def __init__(self) -> None:
        self._values: deque[str] = deque(maxlen=_MAX_REGISTERED)
        self._lock = threading.Lock()
        self._longest_first: tuple[str, ...] = ()

    def add(self, values: list[str]) -> None:
        with self._lock:
            for value in values:
                if len(value) >= MIN_SECRET and value not in self._values:
                    self._values.append(value)
            self._longest_first = tuple(sorted(self._values, key=len, reverse=True))

    def values(self) -> tuple[str, ...]:
        return self._longest_first


_REGISTRY = _Registry()


def register(value: str) -> None:
    """Remember a secret value, the URLs and keyed values inside it, and their URL-encoded forms."""
    found = [value]
    for url in _URL.finditer(value):  # a URL, and its path and query as HTTP clients log them
        found += [url.group(0), url.group(3)]
    for match in _PATTERNS[0][0].finditer(value):  # the password in a URL's user info
        found.append(match.group(0)[len(match.group(1)) : -1].split(":", 1)[-1])
    for match in _PATTERNS[1][0].finditer(value):  # keyed values: AccountKey=..., password=...
        found.append(match.group(0)[match.end(2) - match.start(0) :].strip("'\""))
    found += [quote(item, safe="") for item in found]
    _REGISTRY.add(found)


def redact(text: str, *, limit: int = 300) -> str:
    """A secret-free version of `text`, at most `limit` characters (safe for logs, storage, answers)."""
    truncated = len(text) > limit + _SLACK
    work = text[: limit + _SLACK]
    secrets = _REGISTRY.values()
    if truncated:
        work = _drop_partial_secret(work, secrets)
    for secret in secrets:
        if secret in work:
            work = work.replace(secret, MARK)
    work = _URL.sub(_clean_url, work)
    for pattern, replacement in _PATTERNS:
        work = pattern.sub(replacement, work)
    if truncated or len(work) > limit:
        return work[: max(limit - 1, 0)] + "…"
    return work


def _clean_url(match: re.Match[str]) -> str:
    """A webhook URL (or any URL signed with `sig=`) keeps only its scheme and host."""
    scheme, host, rest = match.groups()
    if _WEBHOOK_HOST.search(host.rsplit(":", 1)[0]) or _SIGNED.search(rest):
        return f"{scheme}{host}/{MARK}" if rest else match.group(0)
    return match.group(0)


def _drop_partial_secret(work: str, secrets: tuple[str, ...]) -> str:
    """Cut the tail of a truncated text where it holds the beginning of a registered secret."""
    for secret in secrets:
        head = secret[:MIN_SECRET]
        start = work.find(head, max(0, len(work) - len(secret) + 1))
        while start != -1:
            if secret.startswith(work[start:]):
                return work[:start]
            start = work.find(head, start + 1)
    return work


class Secret:
    """A string that never shows itself in repr, str, logs or exception texts.

    Making one registers its value, so `redact` removes it wherever it appears.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class RedactingFilter(logging.Filter):
    """Redacts a record's message and traceback in place; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record: let logging report it as usual
            return True
        clean = redact(message, limit=LOG_LIMIT)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, limit=4 * LOG_LIMIT)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, limit=4 * LOG_LIMIT)
        return True


_FILTER = RedactingFilter("secrets")
_INSTALL_LOCK = threading.Lock()
_installed: list[bool] = []


def install_log_redaction() -> None:
    """Apply `RedactingFilter` to every log record, once per process (no I/O).

    A filter on a logger misses what its child loggers propagate, and a filter on a handler misses
    handlers added later (the Functions worker's, a test's), so the filter runs in the log record
    factory: every record is redacted when it is made, whoever logs it and wherever it goes.
    """
    with _INSTALL_LOCK:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def make_record(*args: object, **kwargs: object) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _FILTER.filter(record)
            return record

        logging.setLogRecordFactory(make_record)
        _installed.append(True)
