"""postgresql:// sink against a real PostgreSQL server (127.0.0.1:5432, database test).

Skipped with the reason when no server answers; in CI (CI set) that is a failure."""

import dataclasses
import datetime as dt
import os
import threading
import uuid

import apache_beam as beam
import psycopg
import pytest

from wirestream.schemas import DeadLetter, Origin
from tests.transforms.io.test_files import dead_letters, reuters_event_records
from wirestream.transforms.io.postgres import (PostgresRecordSink, PostgresTarget, RetryPolicy,
                                    SinkWriteError, WriteToPostgres, create_table, redacted_url)
from wirestream.pipelines.sinks import SinkSettings, default_dead_letter_spec, write_records
from wirestream.transforms.io.sinks import RecordKind, SinkError, SinkSpec


SERVER = os.environ.get("WIRESTREAM_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

# The README's query, verbatim: stories about Ukraine in the last day, one per
# near-duplicate cluster (its first report when that falls in the day).
UA_LAST_DAY_ONE_PER_CLUSTER = """
SELECT event_id, cluster_id, published_at, headline
FROM (
  SELECT DISTINCT ON (coalesce(cluster_id, event_id::text))
         event_id, cluster_id, published_at, headline
  FROM event_records
  WHERE tags -> 'countries' ? 'UA'
    AND published_at >= now() - interval '1 day'
  ORDER BY coalesce(cluster_id, event_id::text), is_duplicate, published_at, event_id
) AS one_per_cluster
ORDER BY published_at DESC;
"""


@pytest.fixture(scope="module")
def server():
    try:
        psycopg.connect(SERVER, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        message = f"no PostgreSQL at {redacted_url(SERVER)} (set WIRESTREAM_POSTGRES_URL): {exc}"
        if os.environ.get("CI"):  # CI starts PostgreSQL: its absence is a failure there
            pytest.fail(message)
        pytest.skip(message)
    return SERVER


@pytest.fixture
def table(server):
    name = f"wirestream_test_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f"DROP TABLE IF EXISTS {name}, {name}_dead_letters")


@pytest.fixture(scope="module")
def events(shared_data):
    return reuters_event_records(shared_data, 60)


def query(sql, *params):
    with psycopg.connect(SERVER) as connection:
        return connection.execute(sql, params).fetchall()


def run_pipeline(records, spec, kind=RecordKind.EVENTS, batch=None):
    """``batch``: the records go to the sink in lists of that many, as a bounded run with dedup gives them."""
    elements = records if batch is None else [records[i:i + batch] for i in range(0, len(records), batch)]
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        (pipeline | beam.Create(elements, reshuffle=False)
         | write_records(spec, kind, SinkSettings(), batched=batch is not None))


@pytest.mark.parametrize("batch", [None, 7])
def test_replaying_the_same_input_leaves_each_event_once_and_equal(server, table, events, batch):
    spec = f"{server}?table={table}"
    run_pipeline(events, spec, batch=batch)
    run_pipeline(list(reversed(events)), spec, batch=batch)
    rows = query(f"SELECT event_id::text, record, tags, published_at, is_duplicate, ingested_at "
                 f"FROM {table}")
    assert len(rows) == len(events)
    by_id = {r[0]: r for r in rows}
    for event in events:
        event_id, record, tags, published_at, is_duplicate, ingested_at = by_id[event.event_id]
        assert record == event.to_dict() and tags == event.tags
        assert published_at == dt.datetime.fromisoformat(event.published_at)
        assert ingested_at == dt.datetime(2024, 5, 1, 10, tzinfo=dt.timezone.utc)


def test_a_changed_record_replaces_its_row(server, table, events):
    spec = f"{server}?table={table}"
    run_pipeline(events[:3], spec)
    corrected = dataclasses.replace(events[1], cluster_id=events[0].event_id, is_duplicate=True,
                                    duplicate_of=events[0].event_id, similarity=0.91)
    run_pipeline([corrected], spec)
    rows = query(f"SELECT event_id::text, cluster_id, is_duplicate, duplicate_of::text, similarity, "
                 f"record FROM {table} ORDER BY event_id")
    assert len(rows) == 3
    (row,) = [r for r in rows if r[0] == corrected.event_id]
    assert row[1:5] == (events[0].event_id, True, events[0].event_id, 0.91)
    assert row[5] == corrected.to_dict()


def test_a_streaming_correction_is_never_overwritten_by_the_record_it_corrects(server, table, events):
    # A re-emitted record (cluster_revision 1) may be written before its first
    # emission, in another bundle or in the same one: the higher revision stays.
    spec = f"{server}?table={table}"
    first = events[1]
    corrected = dataclasses.replace(first, cluster_id=events[0].cluster_id, is_duplicate=True,
                                    duplicate_of=events[0].event_id, cluster_revision=1)
    run_pipeline([corrected], spec)
    run_pipeline([first], spec)
    run_pipeline([corrected, first], spec)  # one bundle: the sink's buffer keeps the newer
    rows = query(f"SELECT is_duplicate, duplicate_of::text, cluster_revision, record "
                 f"FROM {table} WHERE event_id = %s", first.event_id)
    assert rows == [(True, events[0].event_id, 1, corrected.to_dict())]


def test_a_table_made_before_cluster_revision_gains_the_column(server, table, events):
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f"CREATE TABLE {table} (event_id uuid PRIMARY KEY, story_id text NOT NULL, "
                           "version integer, source text, headline text NOT NULL, body text NOT NULL, "
                           "url text, section text, dateline text, format text NOT NULL, "
                           "published_at timestamptz, updated_at timestamptz, language text NOT NULL, "
                           "language_confidence double precision, cluster_id text, is_duplicate boolean "
                           "NOT NULL, duplicate_of uuid, similarity double precision, update_of uuid, "
                           "tags jsonb NOT NULL, ingested_at timestamptz NOT NULL, schema_version text "
                           "NOT NULL, record jsonb NOT NULL)")
    run_pipeline(events[:2], f"{server}?table={table}")
    assert query(f"SELECT count(*), max(cluster_revision) FROM {table}") == [(2, 0)]


def test_dead_letters_go_to_their_own_table_byte_for_byte(server, table):
    spec = default_dead_letter_spec(f"{server}?table={table}")
    assert spec.endswith(f"table={table}_dead_letters")
    letters = dead_letters() + [DeadLetter(
        stage="parse", error="bad byte \x00 here", raw=b"nul \x00 inside valid UTF-8",
        origin=Origin(kind="kafka", ingested_at="2024-05-01T10:00:00Z", topic="wires",
                      partition=0, offset=7))]
    for _ in range(2):
        run_pipeline(letters, spec, RecordKind.DEAD_LETTERS)
    rows = query(f"SELECT dead_letter_id, stage, error, raw, origin FROM {table}_dead_letters")
    assert sorted((r[0], bytes(r[3])) for r in rows) == sorted(
        (d.dead_letter_id, d.raw) for d in letters)
    assert {r[2] for r in rows} >= {"bad byte \ufffd here", "no text content"}


def test_ua_last_day_one_per_cluster_query(server, table, events):
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

    def story(i, countries, cluster, original, age):
        published = (now - age).strftime("%Y-%m-%dT%H:%M:%SZ")
        record = events[i]
        return dataclasses.replace(
            record, published_at=published, cluster_id=events[cluster].event_id,
            is_duplicate=not original,
            duplicate_of=None if original else events[cluster].event_id,
            tags={**record.tags, "countries": countries})

    hour = dt.timedelta(hours=1)
    stories = [
        story(0, ["UA", "RU"], 0, True, 3 * hour),   # cluster 0: first report...
        story(1, ["UA"], 0, False, 2 * hour),        # ...and a later duplicate
        story(2, ["UA"], 3, False, 1 * hour),        # cluster 3: its first report is 2 days old
        story(3, ["UA"], 3, True, 48 * hour),
        story(4, ["US"], 4, True, 1 * hour),         # not about Ukraine
        story(5, ["PL", "UA"], 5, True, hour / 2),   # a cluster of one
    ]
    run_pipeline(stories, f"{server}?table={table}")
    rows = query(UA_LAST_DAY_ONE_PER_CLUSTER.replace("event_records", table))
    assert [r[0] for r in rows] == [uuid.UUID(events[i].event_id) for i in (5, 2, 0)]
    assert rows[2][3] == events[0].headline


def test_indexes_serve_country_and_time_queries(server, table, events):
    run_pipeline(events, f"{server}?table={table}")
    with psycopg.connect(server) as connection:
        connection.execute("SET enable_seqscan = off")
        country = connection.execute(
            f"EXPLAIN SELECT event_id FROM {table} WHERE tags -> 'countries' ? 'UA'").fetchall()
        tags = connection.execute(
            f"EXPLAIN SELECT event_id FROM {table} WHERE tags @> %s::jsonb",
            ('{"people": ["reagan"]}',)).fetchall()
        recent = connection.execute(
            f"EXPLAIN SELECT event_id FROM {table} WHERE published_at > now() - interval '1 day'"
        ).fetchall()
    assert f"{table}_countries" in str(country)
    assert f"{table}_tags" in str(tags)
    assert f"{table}_published_at" in str(recent)


def test_concurrent_workers_create_the_table_once(server, table):
    target = PostgresTarget.from_spec(SinkSpec.parse(f"{server}?table={table}"))
    errors = []

    def start_worker():
        try:
            with psycopg.connect(target.conninfo, autocommit=True) as connection:
                create_table(connection, target.table, RecordKind.EVENTS)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    workers = [threading.Thread(target=start_worker) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert query("SELECT count(*) FROM pg_tables WHERE tablename = %s", table) == [(1,)]


def test_a_lost_connection_is_retried_and_nothing_is_lost(server, table, events):
    target = PostgresTarget.from_spec(SinkSpec.parse(f"{server}?table={table}"))
    waits = []
    sink = PostgresRecordSink(target, RecordKind.EVENTS,
                              RetryPolicy(attempts=3, first_delay=0.2, jitter=0.1),
                              sleep=waits.append)
    for event in events[:10]:
        sink.add(event.event_id, event.to_dict())
    query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
          "WHERE application_name = 'wirestream' AND pid <> pg_backend_pid()")
    sink.flush()
    sink.close()
    assert len(waits) == 1 and 0.2 <= waits[0] <= 0.3
    assert query(f"SELECT count(*) FROM {table}") == [(10,)]


def test_an_unreachable_server_fails_the_run(events, unused_port):
    target = PostgresTarget.from_spec(SinkSpec.parse(
        f"postgresql://wire:s3cret@127.0.0.1:{unused_port}/test?table=t&connect_timeout=2"))
    with pytest.raises(Exception) as failure:
        with beam.Pipeline(runner="FnApiRunner") as pipeline:
            (pipeline | beam.Create(events[:5])
             | WriteToPostgres(target, RecordKind.EVENTS, RetryPolicy(attempts=2, first_delay=0.05)))
    assert "failed after 2 attempts" in str(failure.value)
    assert "s3cret" not in str(failure.value)


@pytest.fixture
def unused_port():
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_sink_url_parameters(server):
    target = PostgresTarget.from_spec(SinkSpec.parse(
        "postgresql://wire:p%40ss@db.example:5433/news?table=archive.stories&sslmode=require"))
    assert target.table == "archive.stories"
    assert target.conninfo == "postgresql://wire:p%40ss@db.example:5433/news?sslmode=require"
    assert "p%40ss" not in target.shown and "***" in target.shown
    in_query = PostgresTarget.from_spec(SinkSpec.parse(
        "postgresql://wire@db.example/news?table=t&password=hunter2&sslpassword=k3y&sslmode=require"))
    assert "hunter2" not in in_query.shown and "k3y" not in in_query.shown
    assert in_query.shown.count("***") == 2 and "sslmode=require" in in_query.shown
    assert PostgresTarget.from_spec(SinkSpec.parse("postgresql://u@h/db")).table == "event_records"
    for bad in ("postgresql://u@h/db?table=x;drop", "postgresql://u@h/db?table=1x",
                "postgresql://u@h?table=t"):
        with pytest.raises(SinkError):
            PostgresTarget.from_spec(SinkSpec.parse(bad))


# --- retries with judgement: what can heal is retried with jitter, the rest fails at once -----

def test_an_unreachable_server_is_retried_with_jittered_exponential_waits(unused_port):
    target = PostgresTarget.from_spec(SinkSpec.parse(
        f"postgresql://wire@127.0.0.1:{unused_port}/test?table=t&connect_timeout=2"))
    waits = []
    with pytest.raises(SinkWriteError, match="failed after 5 attempts.*Connection refused"):
        PostgresRecordSink(target, RecordKind.EVENTS,
                           RetryPolicy(attempts=5, first_delay=0.5, max_delay=30, jitter=1.0),
                           sleep=waits.append)
    assert len(waits) == 4
    for n, wait in enumerate(waits):
        assert 0.5 * 2 ** n <= wait <= 0.5 * 2 ** n + 1.0
    # jitter: two workers failing together do not retry in lockstep
    others = []
    with pytest.raises(SinkWriteError):
        PostgresRecordSink(target, RecordKind.EVENTS,
                           RetryPolicy(attempts=5, first_delay=0.5, max_delay=30, jitter=1.0),
                           sleep=others.append)
    assert others != waits


@pytest.mark.parametrize("parameters, reason", [
    ("sslmode=bogus", "invalid sslmode value"),
    ("sslmode=verify-full&sslrootcert=/nonexistent/root.crt", "root certificate file"),
])
def test_configuration_errors_fail_at_once(server, parameters, reason):
    target = PostgresTarget.from_spec(SinkSpec.parse(f"{server}?table=t&{parameters}"))
    waits = []
    with pytest.raises(SinkWriteError, match=reason) as failure:
        PostgresRecordSink(target, RecordKind.EVENTS, sleep=waits.append)
    assert waits == [] and "not retried" in str(failure.value)


def test_a_missing_database_or_role_fails_at_once(server):
    host = SERVER.split("@", 1)[1].split("/", 1)[0]
    for url in (f"postgresql://postgres@{host}/no_such_database_{uuid.uuid4().hex[:6]}?table=t",
                f"postgresql://no_such_role_{uuid.uuid4().hex[:6]}@{host}/test?table=t"):
        waits = []
        with pytest.raises(SinkWriteError, match="does not exist"):
            PostgresRecordSink(PostgresTarget.from_spec(SinkSpec.parse(url)), RecordKind.EVENTS,
                               sleep=waits.append)
        assert waits == []


def test_an_error_in_the_data_or_the_table_is_not_retried(server, table, events):
    with psycopg.connect(SERVER, autocommit=True) as connection:  # not our layout: permanent
        connection.execute(f"CREATE TABLE {table} (event_id uuid PRIMARY KEY)")
    target = PostgresTarget.from_spec(SinkSpec.parse(f"{server}?table={table}"))
    waits = []
    with pytest.raises(psycopg.errors.UndefinedColumn):  # creating our indexes: no such column
        PostgresRecordSink(target, RecordKind.EVENTS, sleep=waits.append)
    assert waits == []


# --- passwords from the environment, a passfile or .pgpass: a private server that checks them ---

def _postgres_bin(name: str):
    import glob
    import shutil
    return shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                                                  reverse=True)), None)


@pytest.fixture(scope="module")
def password_server():
    """A PostgreSQL cluster of our own that requires a SCRAM password (the shared
    server trusts everyone, so it cannot show that a password is used or refused)."""
    import shutil
    import socket
    import subprocess
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if not (initdb and pg_ctl):
        if os.environ.get("CI"):
            pytest.fail("initdb/pg_ctl not found")
        pytest.skip("initdb/pg_ctl not found")
    import pathlib
    import tempfile
    # Not under pytest's directory: the server's user must be able to reach it.
    root = pathlib.Path(tempfile.mkdtemp(prefix="wirestream-pg-"))
    as_user = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    (root / "pw").write_text("right-password\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subprocess.run([*as_user, initdb, "-D", str(root / "data"), "-U", "wire", "--pwfile",
                    str(root / "pw"), "-A", "scram-sha-256", "--no-sync"],
                   check=True, capture_output=True)
    subprocess.run([*as_user, pg_ctl, "start", "-D", str(root / "data"), "-w", "-l", str(root / "log"),
                    "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://wire@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(root / "data"), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _write_one(url: str, events, waits=None) -> int:
    sink = PostgresRecordSink(PostgresTarget.from_spec(SinkSpec.parse(url)), RecordKind.EVENTS,
                              sleep=(waits if waits is not None else []).append)
    sink.add(events[0].event_id, events[0].to_dict())
    sink.close()
    with psycopg.connect(url.split("?")[0], password="right-password") as connection:
        return connection.execute("SELECT count(*) FROM pw_events").fetchone()[0]


def test_a_password_from_pgpassword(password_server, events, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "right-password")
    assert _write_one(f"{password_server}?table=pw_events", events) >= 1


def test_a_password_from_a_passfile_or_pgpass(password_server, events, monkeypatch, tmp_path):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    passfile = tmp_path / "pgpass"
    host_port = password_server.split("@", 1)[1].split("/", 1)[0]
    passfile.write_text(f"{host_port}:postgres:wire:right-password\n")
    passfile.chmod(0o600)
    assert _write_one(f"{password_server}?table=pw_events&passfile={passfile}", events) >= 1
    monkeypatch.setenv("PGPASSFILE", str(passfile))  # where libpq looks for .pgpass
    assert _write_one(f"{password_server}?table=pw_events", events) >= 1


def test_an_authentication_failure_fails_at_once_and_shows_no_password(password_server, events,
                                                                       monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "wrong-password")
    waits = []
    with pytest.raises(SinkWriteError, match="password authentication failed") as failure:
        _write_one(f"{password_server}?table=pw_events", events, waits)
    assert waits == [] and "wrong-password" not in str(failure.value)
    monkeypatch.delenv("PGPASSWORD")
    with pytest.raises(SinkWriteError, match="password authentication failed") as failure:
        _write_one(password_server.replace("wire@", "wire:wrong-password@") + "?table=pw_events",
                   events, waits)
    assert waits == [] and "wrong-password" not in str(failure.value)
    with pytest.raises(SinkWriteError, match="password authentication failed") as failure:
        _write_one(f"{password_server}?table=pw_events&password=wrong-password", events, waits)
    assert waits == [] and "wrong-password" not in str(failure.value)
