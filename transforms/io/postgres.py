"""PostgreSQL sink: ``postgresql://USER[:PASSWORD]@HOST:PORT/DB?table=T[&sslmode=...]``.

The table (and its indexes) is created if absent from ``schemas/postgres.sql``
when the sink starts, under an advisory lock so that concurrent workers do not
race. Records are buffered per bundle and written in one transaction: COPY
into a session-temporary staging table, then ``INSERT ... ON CONFLICT (key)
DO UPDATE``, so a retried bundle or a replayed archive leaves each record once
(rows that did not change are not rewritten). Transient errors (connection
lost, server restarting, serialization failure, deadlock) are retried by
tenacity with exponential backoff plus jitter on a fresh connection; when the
retries run out the bundle fails, so the run fails rather than report success
with records missing. Configuration and authentication errors (a bad sslmode,
a wrong password, a missing database or role) and statements the server
refuses are not retried: they fail at once. Passwords come from the URL, or
better from libpq's own sources: PGPASSWORD, ~/.pgpass (PGPASSFILE) or a
``passfile=PATH`` URL parameter.
Dead letters go to ``T_dead_letters`` unless ``--dead-letter`` says otherwise.
Every URL parameter except ``table`` is passed to libpq; the password is never
shown in errors or logs.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import re
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any, Callable, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import apache_beam as beam
import psycopg
import tenacity
from psycopg import sql

from wirestream.schemas import load_schema

from wirestream.transforms.io.sinks import (redacted_url, RecordKind, RecordSink, SinkError, SinkSpec,
                                 WriteToRecordSink)

log = logging.getLogger(__name__)

DEFAULT_TABLE = "event_records"
DEAD_LETTER_SUFFIX = "_dead_letters"
# Index names are "<table>_<purpose>"; PostgreSQL cuts identifiers at 63 bytes.
_TABLE_NAME = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]{0,62}\.)?[A-Za-z_][A-Za-z0-9_]{0,48}$")


@dataclass(frozen=True)
class PostgresTarget:
    conninfo: str  # the libpq URL without wirestream's own parameters
    table: str  # "name" or "schema.name"

    @classmethod
    def from_spec(cls, spec: SinkSpec) -> "PostgresTarget":
        parts = urlsplit(f"postgresql:{spec.target}")
        params = parse_qsl(parts.query, keep_blank_values=True)
        tables = [value for key, value in params if key == "table"]
        table = tables[-1] if tables else DEFAULT_TABLE
        if not _TABLE_NAME.match(table):
            raise SinkError(f"bad table name {table!r} in {redacted_url(spec.text)}: letters, "
                            "digits and _ (at most 49), optionally schema-qualified")
        if not parts.hostname or not parts.path.strip("/"):
            raise SinkError(f"bad PostgreSQL sink {redacted_url(spec.text)}: expected "
                            "postgresql://USER@HOST:PORT/DB?table=T")
        libpq = urlencode([(k, v) for k, v in params if k != "table"])
        return cls(urlunsplit(parts._replace(query=libpq)), table)

    @property
    def shown(self) -> str:
        return f"{redacted_url(self.conninfo)} table {self.table}"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # 0.5 + 1 + 2 + 4 + 8 s of waiting, plus jitter: rides out a server restart
    first_delay: float = 0.5
    max_delay: float = 30.0
    # Up to this many seconds added at random to each wait, so that workers that
    # lost the server together do not all come back in the same instant.
    jitter: float = 1.0


# SQLSTATEs of failures that may succeed if tried again: serialization failure,
# deadlock, lock not available, server shutting down or starting, too many
# connections, and class 08 (connection exceptions).
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300"})
# libpq reports connection failures without a SQLSTATE. These are configuration
# or authentication errors, which no retry heals; any other connection failure
# (refused, timed out, closed by the server, name not resolved) may heal.
_PERMANENT_CONNECTION_FAILURE = re.compile(
    r"invalid \w+ value|invalid connection option|invalid (?:URI|integer|percent)|"
    r"missing \"=\"|password authentication failed|no password supplied|"
    r"authentication failed|does not exist|no pg_hba\.conf entry|root certificate|"
    r"certificate verify failed|server does not support SSL|sslmode value|"
    r"permission denied|is not permitted to log in", re.I)


def is_transient(exc: BaseException) -> bool:
    """Can retrying on a new connection heal this error?"""
    if not isinstance(exc, psycopg.Error):
        return False
    if exc.sqlstate:
        return exc.sqlstate in TRANSIENT_SQLSTATES or exc.sqlstate.startswith("08")
    return (isinstance(exc, psycopg.OperationalError)
            and not _PERMANENT_CONNECTION_FAILURE.search(str(exc)))


@functools.lru_cache(maxsize=None)
def _ddl_templates() -> dict[str, str]:
    text = resources.files("wirestream.schemas").joinpath("postgres.sql").read_text("utf-8")
    sections = re.split(r"^-- kind: (\w+)\s*$", text, flags=re.MULTILINE)
    return dict(zip(sections[1::2], sections[2::2]))


def _identifier(table: str) -> sql.Identifier:
    return sql.Identifier(*table.split("."))


def _without_nul(value):
    # PostgreSQL text and jsonb cannot hold U+0000.
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def _json(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return json.dumps(_without_nul(value), ensure_ascii=False) if "\\u0000" in text else text


def _text(value: Optional[str]) -> Optional[str]:
    return value.replace("\x00", "\ufffd") if value else value


# --- the tables, derived from the JSON Schema ----------------------------------------------

# JSON Schema (type, format) -> PostgreSQL type; objects and arrays are jsonb.
_SQL_TYPES = {("string", "uuid"): "uuid", ("string", "date-time"): "timestamptz",
              ("string", None): "text", ("integer", None): "integer",
              ("number", None): "double precision", ("boolean", None): "boolean",
              ("object", None): "jsonb", ("array", None): "jsonb"}
RECORD = "record"  # the whole document, so nothing is lost when the JSON Schema gains a field


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    not_null: bool
    value: Callable[[dict], Any]  # document -> the value COPY writes
    default: Any = None

    @property
    def ddl(self) -> str:
        default = ("" if self.default is None else f" DEFAULT '{self.default}'"
                   if isinstance(self.default, str) else f" DEFAULT {self.default}")
        return f"{self.name} {self.sql_type}{' NOT NULL' if self.not_null else ''}{default}"


def _property(schema: dict, path: tuple[str, ...]) -> tuple[dict, bool]:
    """The JSON Schema node at PATH ("origin", "ingested_at"), and whether it is
    always present and never null."""
    node, present = schema, True
    for name in path:
        present = present and name in node.get("required", ())
        node = node["properties"][name]
        if "$ref" in node:
            node = load_schema(node["$ref"].split(".v1.")[0])
    types = node["type"] if isinstance(node["type"], list) else [node["type"]]
    return node, present and "null" not in types


def schema_column(schema: dict, path: str) -> Column:
    """A column for the document field at PATH (dotted); named after its last part."""
    keys = tuple(path.split("."))
    node, always = _property(schema, keys)
    (json_type,) = [t for t in ([node["type"]] if isinstance(node["type"], str) else node["type"])
                    if t != "null"]
    sql_type = _SQL_TYPES.get((json_type, node.get("format")), _SQL_TYPES.get((json_type, None)))
    default = node.get("default")
    convert = _json if sql_type == "jsonb" else _text if sql_type == "text" else (lambda v: v)

    def value(document: dict):
        for key in keys[:-1]:
            document = document[key]
        found = document.get(keys[-1], default)
        return None if found is None else convert(found)
    return Column(keys[-1], sql_type, always or default is not None, value, default)


def _raw_bytes(d: dict) -> bytes:
    return base64.b64decode(d["raw"]) if d["raw_encoding"] == "base64" else d["raw"].encode("utf-8")


@dataclass(frozen=True)
class TableLayout:
    key: str
    columns: tuple[Column, ...]
    revision: Optional[str] = None  # a row never replaces one with a higher value here

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def row(self, document: dict) -> tuple:
        return tuple(c.value(document) for c in self.columns)

    @functools.cached_property
    def _revision_at(self) -> Optional[int]:
        return None if self.revision is None else self.names.index(self.revision)

    def newer(self, row: tuple, than: Optional[tuple]) -> bool:
        at = self._revision_at
        return than is None or at is None or row[at] >= than[at]

    def ddl(self) -> str:
        """CREATE TABLE, then ADD COLUMN for each column a table made by an older
        version may lack: 1.x adds only fields that may be null or have a default
        (a NOT NULL column without one cannot be added to a table with rows).
        ``{table}`` is filled in by ``create_table``."""
        key = self.names.index(self.key)
        columns = ",\n    ".join(c.ddl + (" PRIMARY KEY" if i == key else "")
                                  for i, c in enumerate(self.columns))
        added = ",\n    ".join(f"ADD COLUMN IF NOT EXISTS {c.ddl}" for c in self.columns
                               if not c.not_null or c.default is not None)
        return (f"CREATE TABLE IF NOT EXISTS {{table}} (\n    {columns}\n);\n"
                f"ALTER TABLE {{table}}\n    {added};\n")


def _layout(schema_name: str, key: str, columns: tuple, revision: Optional[str] = None
            ) -> TableLayout:
    """COLUMNS: document field paths, or a Column for what is not a field as is."""
    schema = load_schema(schema_name)
    return TableLayout(key, tuple(c if isinstance(c, Column) else schema_column(schema, c)
                                  for c in columns), revision)


# Which document fields are columns (for queries and indexes), in table order;
# the JSON Schema says their types, nullability and defaults.
LAYOUTS = {
    RecordKind.EVENTS: _layout("event_record", "event_id", (
        "event_id", "story_id", "version", "source", "headline", "body", "url", "section",
        "dateline", "format", "published_at", "updated_at", "language", "language_confidence",
        "cluster_id", "is_duplicate", "duplicate_of", "similarity", "update_of", "cluster_revision",
        "tags", "origin.ingested_at", "schema_version", Column(RECORD, "jsonb", True, _json)),
        revision="cluster_revision"),
    RecordKind.DEAD_LETTERS: _layout("dead_letter", "dead_letter_id", (
        "dead_letter_id", "stage", "error",
        Column("raw", "bytea", True, _raw_bytes),  # the payload byte for byte (text cannot hold every byte)
        "origin", "origin.ingested_at", "schema_version", "error_kind", "traceback")),
}


def create_table(connection: psycopg.Connection, table: str, kind: RecordKind) -> None:
    """CREATE ... IF NOT EXISTS is not safe when two sessions run it at once
    (both may try to insert the catalogue row), hence the advisory lock."""
    template = LAYOUTS[kind].ddl() + _ddl_templates()[kind.value]
    indexes = {f"{purpose}_index": sql.Identifier(f"{table.split('.')[-1]}_{purpose}")
               for purpose in re.findall(r"\{(\w+)_index\}", template)}
    statements = sql.SQL(template).format(table=_identifier(table), **indexes)
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(hashtext('wirestream ddl'))")
        connection.execute(statements)


def upsert_rows(connection: psycopg.Connection, table: str, kind: RecordKind,
                rows: list[tuple]) -> None:
    layout = LAYOUTS[kind]
    target, staging = _identifier(table), sql.Identifier(f"wirestream_staging_{kind.value}")
    columns = sql.SQL(", ").join(map(sql.Identifier, layout.names))
    updated = [c for c in layout.names if c != layout.key]
    assignments = sql.SQL(", ").join(
        sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in updated)
    current = sql.SQL(", ").join(sql.SQL("{t}.{c}").format(t=target, c=sql.Identifier(c))
                                 for c in updated)
    incoming = sql.SQL(", ").join(sql.SQL("EXCLUDED.{c}").format(c=sql.Identifier(c))
                                  for c in updated)
    changed = sql.SQL("({current}) IS DISTINCT FROM ({incoming})").format(current=current, incoming=incoming)
    if layout.revision is not None:  # a streaming re-emission may overtake the record it corrects
        changed = sql.SQL("{changed} AND EXCLUDED.{r} >= {t}.{r}").format(
            changed=changed, r=sql.Identifier(layout.revision), t=target)
    with connection.transaction(), connection.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {s} (LIKE {t}) "
                               "ON COMMIT DELETE ROWS").format(s=staging, t=target))
        with cursor.copy(sql.SQL("COPY {s} ({cols}) FROM STDIN").format(
                s=staging, cols=columns)) as copy:
            for row in rows:
                copy.write_row(row)
        # Unchanged rows are left alone: a replay costs no table bloat.
        cursor.execute(sql.SQL(
            "INSERT INTO {t} ({cols}) SELECT {cols} FROM {s} "
            "ON CONFLICT ({key}) DO UPDATE SET {assignments} WHERE {changed}").format(
                t=target, cols=columns, s=staging, key=sql.Identifier(layout.key),
                assignments=assignments, changed=changed))


class PostgresRecordSink(RecordSink):
    """Buffers rows (per key the last one, unless it has a lower revision) and
    upserts them on flush."""

    def __init__(self, target: PostgresTarget, kind: RecordKind,
                 retry: RetryPolicy = RetryPolicy(), batch_rows: int = 5000,
                 sleep: Callable[[float], None] = time.sleep):
        self._target, self._kind, self._retry = target, kind, retry
        self._batch_rows, self._sleep = batch_rows, sleep
        self._layout = LAYOUTS[kind]
        self._rows: dict[str, tuple] = {}
        self._connection: Optional[psycopg.Connection] = None
        self._with_retries(lambda connection: None)  # connect and create the table now

    def add(self, key: str, document: dict) -> None:
        row = self._layout.row(document)
        if self._layout.newer(row, self._rows.get(key)):
            self._rows[key] = row
        if len(self._rows) >= self._batch_rows:
            self.flush()

    def flush(self) -> None:
        if self._rows:
            rows = list(self._rows.values())
            self._with_retries(lambda c: upsert_rows(c, self._target.table, self._kind, rows))
            self._rows.clear()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._disconnect()

    def _connect(self) -> psycopg.Connection:
        settings = psycopg.conninfo.conninfo_to_dict(self._target.conninfo)
        settings.setdefault("connect_timeout", 10)
        settings.setdefault("application_name", "wirestream")
        connection = psycopg.connect(**settings, autocommit=True)
        create_table(connection, self._target.table, self._kind)
        return connection

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _with_retries(self, action: Callable[[psycopg.Connection], Any]) -> Any:
        policy = self._retry
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(policy.attempts),
            wait=(tenacity.wait_exponential(multiplier=policy.first_delay, max=policy.max_delay)
                  + tenacity.wait_random(0, policy.jitter)),
            retry=tenacity.retry_if_exception(is_transient), sleep=self._sleep,
            before_sleep=self._log_retry, reraise=True)
        try:
            for attempt in retrying:
                with attempt:
                    try:
                        if self._connection is None or self._connection.closed:
                            self._connection = self._connect()
                        return action(self._connection)
                    except psycopg.Error as exc:
                        if is_transient(exc):
                            self._disconnect()  # the next attempt starts on a new connection
                        raise
        except psycopg.Error as exc:
            if is_transient(exc):
                raise SinkWriteError(f"writing {self._kind.value} to {self._target.shown} failed "
                                     f"after {policy.attempts} attempts: {self._reason(exc)}"
                                     ) from None
            if isinstance(exc, psycopg.OperationalError):
                raise SinkWriteError(f"writing {self._kind.value} to {self._target.shown} failed: "
                                     f"{self._reason(exc)} (not retried: a configuration or "
                                     "authentication error)") from None
            raise  # a statement the server refuses (data, table, permissions): fails the bundle

    def _reason(self, exc: BaseException) -> str:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        password = psycopg.conninfo.conninfo_to_dict(self._target.conninfo).get("password")
        return reason.replace(password, "***") if password else reason

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        log.warning("writing %s to %s failed (%s); retrying in %.1f s", self._kind.value,
                    self._target.shown, self._reason(state.outcome.exception()),
                    state.next_action.sleep)


class SinkWriteError(RuntimeError):
    """The destination stayed unavailable: the bundle (and so the run) fails."""


class WriteToPostgres(beam.PTransform):
    def __init__(self, target: PostgresTarget, kind: RecordKind, retry: RetryPolicy = RetryPolicy()):
        super().__init__()
        self._target, self._kind, self._retry = target, kind, retry

    def expand(self, records):
        make_sink = functools.partial(PostgresRecordSink, self._target, self._kind, self._retry)
        return records | "UpsertRows" >> beam.ParDo(WriteToRecordSink(make_sink, self._kind))


def dead_letter_table(spec: SinkSpec) -> str:
    target = PostgresTarget.from_spec(spec)
    parts = urlsplit(f"postgresql:{spec.target}")
    params = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "table"]
    params.append(("table", target.table + DEAD_LETTER_SUFFIX))
    return urlunsplit(parts._replace(query=urlencode(params)))


def write_postgres(spec: SinkSpec, kind: RecordKind) -> beam.PTransform:
    return WriteToPostgres(PostgresTarget.from_spec(spec), kind)
