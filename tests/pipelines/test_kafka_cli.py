"""`wirestream produce` and `wirestream run` against a real broker process."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from wirestream.pipelines import engines
from wirestream.pipelines.kafka_commands import KafkaBroker
from tests.kafka_broker import create_topic, require_engine
from tests.transforms.io.test_kafka_io import committed, produce, read_topic

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
MALFORMED = [b"{not json", b"\x00\x01binary", b"", b"<rss><channel></channel>",
             b'{"headline": ""}']


def wirestream(*args, cwd, timeout=180):
    return subprocess.run([sys.executable, "-m", "wirestream.pipelines.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def stories(shared_data, tmp_path):
    """Real stories: 40 Reuters-21578 articles, the IPTC ninjs examples and the seed."""
    lines = (shared_data / "reuters21578" / "reuters21578.jsonl.gz")
    import gzip
    with gzip.open(lines, "rt", encoding="utf-8") as handle:
        reuters = [next(handle) for _ in range(40)]
    (tmp_path / "reuters.jsonl").write_text("".join(reuters), encoding="utf-8")
    for example in sorted((shared_data / "iptc_ninjs_examples").glob("*.json")):
        (tmp_path / example.name).write_bytes(example.read_bytes())
    for seed in sorted((shared_data / "seed").glob("*.txt")):
        (tmp_path / seed.name).write_bytes(seed.read_bytes())
    return tmp_path


def origins(records):
    return [json.loads(r.value)["origin"] for r in records]


def test_replay_accounts_for_every_input_exactly_once(kafka_broker, stories, tmp_path):
    kafka = f"kafka://{kafka_broker.bootstrap}"
    produced = wirestream("produce", "--to", f"{kafka}/stories", str(stories), cwd=tmp_path)
    assert produced.returncode == 0, produced.stderr
    real = int(produced.stdout.split()[1])
    produce(kafka_broker.bootstrap, "stories", MALFORMED)
    run = wirestream("run", "--source", f"{kafka}/stories?group=g&start=earliest&stop=end",
                     "--sink", f"{kafka}/events", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    events = origins(read_topic(kafka_broker.bootstrap, "events"))
    dead = origins(read_topic(kafka_broker.bootstrap, "events.dlq"))
    inputs = [(o["partition"], o["offset"], o.get("item")) for o in events + dead]
    assert len(inputs) == len(set(inputs))  # nothing twice
    assert len({(p, o) for p, o, _ in inputs}) == real + len(MALFORMED)  # nothing missing
    assert len(dead) >= len(MALFORMED)
    assert all(o["kind"] == "kafka" and o["topic"] == "stories" for o in events + dead)


def test_replaying_twice_into_the_same_topic_leaves_each_event_once_per_key(
        kafka_broker, stories, tmp_path):
    """Kafka topics append: idempotence is by key. A second replay rewrites every event
    under the same key with the same value, so a compacted topic (or any reader keeping the
    last value per key) holds each event once."""
    kafka = f"kafka://{kafka_broker.bootstrap}"
    assert wirestream("produce", "--to", f"{kafka}/twice", str(stories), cwd=tmp_path).returncode == 0
    for group in ("first", "second"):
        run = wirestream("run", "--source", f"{kafka}/twice?group={group}&start=earliest&stop=end",
                         "--sink", f"{kafka}/twice-events", cwd=tmp_path)
        assert run.returncode == 0, run.stderr
    written = read_topic(kafka_broker.bootstrap, "twice-events")
    by_key: dict[bytes, set[bytes]] = {}
    for record in written:
        by_key.setdefault(record.key, set()).add(record.value)
    assert len(written) == 2 * len(by_key)  # every event written once per replay
    assert all(len(values) == 1 for values in by_key.values())  # ...with the same value
    assert {json.loads(v.pop())["event_id"].encode() for v in by_key.values()} == set(by_key)


def test_kill_9_then_restart_from_committed_loses_nothing(kafka_broker, tmp_path):
    kafka = f"kafka://{kafka_broker.bootstrap}"
    story = {"headline": "Port of Rotterdam reopens after strike", "source": "test",
             "body": "Dock workers returned on Monday after a three-day strike."}
    produce(kafka_broker.bootstrap, "wire",
            [json.dumps({**story, "id": f"s{i}", "headline": f"{story['headline']} {i}"}).encode()
             for i in range(30)])
    source = f"{kafka}/wire?group=g&start=committed"
    streaming = subprocess.Popen(
        [sys.executable, "-m", "wirestream.pipelines.cli", "run", "--source", source,
         "--sink", f"{kafka}/events"], cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(6)
    os.kill(streaming.pid, signal.SIGKILL)
    streaming.wait()
    run = wirestream("run", "--source", source + "&stop=end", "--sink", f"{kafka}/events",
                     cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    written = {o["offset"] for o in origins(read_topic(kafka_broker.bootstrap, "events"))}
    headlines = {json.loads(r.value)["headline"] for r in read_topic(kafka_broker.bootstrap, "events")}
    assert headlines == {f"{story['headline']} {i}" for i in range(30)}
    assert written  # offsets are Kafka's


@pytest.mark.parametrize("runner", [[], ["--runner", "PrismRunner"]], ids=["local", "prism"])
def test_sigint_stops_a_streaming_run_cleanly(kafka_broker, tmp_path, runner):
    if runner:
        require_engine(None if engines.prism_binary() else engines.missing_reason(engines.PRISM))
    kafka = f"kafka://{kafka_broker.bootstrap}"
    produce(kafka_broker.bootstrap, "wire", [json.dumps(
        {"id": "a", "headline": "Grain prices rise", "body": "Wheat rose 2% in Chicago."}).encode()])
    streaming = subprocess.Popen(
        [sys.executable, "-m", "wirestream.pipelines.cli", "run", "--source", f"{kafka}/wire?group=g",
         "--sink", f"{kafka}/events", *runner], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while not read_topic(kafka_broker.bootstrap, "events", seconds=0.5):  # live: written
        assert time.monotonic() < deadline and streaming.poll() is None, streaming.stderr.read()
    streaming.send_signal(signal.SIGINT)
    stopped_at = time.monotonic()
    out, err = streaming.communicate(timeout=30)
    assert streaming.returncode == 0, err
    assert time.monotonic() - stopped_at < 10
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "read=1 unique=1 duplicates=0 dead_letters=0 errors=0"
    assert len(read_topic(kafka_broker.bootstrap, "events")) == 1
    assert committed(kafka_broker.bootstrap, "g", "wire") == {0: 1}  # what was written


def test_portable_embed_runner_runs_the_same_pipeline(kafka_broker, tmp_path):
    kafka = f"kafka://{kafka_broker.bootstrap}"
    produce(kafka_broker.bootstrap, "wire", [json.dumps(
        {"id": f"p{i}", "headline": f"Copper output {i}", "body": "Chile mines more copper."}
    ).encode() for i in range(5)] + [b"{broken"])
    run = wirestream("run", "--source", f"{kafka}/wire?stop=end", "--sink", f"{kafka}/events",
                     "--runner", "PortableRunner", "--job_endpoint", "embed",
                     "--environment_type", "LOOPBACK", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip().splitlines()[-1].endswith("dead_letters=1 errors=0")
    assert len(read_topic(kafka_broker.bootstrap, "events")) == 5
    assert len(read_topic(kafka_broker.bootstrap, "events.dlq")) == 1


def test_a_live_stream_out_of_order_ends_with_the_backfill_clusters(kafka_broker, shared_data, tmp_path):
    """400 Reuters stories (21 hours of the wire, 15 near-duplicates). The copies
    go on the wire first and are written, as unique stories, before any story they
    copy arrives; the rest follow newest first. Streaming must write each copy
    again (higher cluster_revision) once its original turns up, so that the
    PostgreSQL table, which keeps the latest revision, equals a backfill of the
    same stories, and the run's counts equal the backfill's."""
    from tests.transforms.io.test_postgres import SERVER, query, server  # noqa: F401 (fixture)
    import gzip
    import psycopg
    with gzip.open(shared_data / "reuters21578" / "reuters21578.jsonl.gz", "rt", encoding="utf-8") as f:
        lines = [line for line in f if 10000 <= json.loads(line)["newid"] < 10400][::-1]
    (tmp_path / "wire.jsonl").write_text("".join(lines), encoding="utf-8")
    kafka, tables = f"kafka://{kafka_broker.bootstrap}", ("ws_stream_order", "ws_backfill_order")

    def rows_written(table):
        try:
            return query(f"SELECT count(*) FROM {table}")[0][0]
        except psycopg.errors.UndefinedTable:
            return 0

    def wait_for(count, process, seconds=180):
        deadline = time.monotonic() + seconds
        while rows_written(tables[0]) < count and process.poll() is None and time.monotonic() < deadline:
            time.sleep(1)
        assert rows_written(tables[0]) == count

    try:
        backfill = wirestream("run", "--source", "wire.jsonl", "--sink", f"{SERVER}?table={tables[1]}",
                              cwd=tmp_path)
        assert backfill.returncode == 0, backfill.stderr
        copies = {row[0] for row in query(f"SELECT story_id FROM {tables[1]} WHERE is_duplicate")}
        assert len(copies) == 15
        first = [line for line in lines if f"reuters21578:{json.loads(line)['newid']}" in copies]
        assert len(first) == 15
        streaming = subprocess.Popen(
            [sys.executable, "-m", "wirestream.pipelines.cli", "run", "--source", f"{kafka}/wire?group=g&start=earliest",
             "--sink", f"{SERVER}?table={tables[0]}"], cwd=tmp_path, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        produce(kafka_broker.bootstrap, "wire", [line.encode() for line in first])
        wait_for(len(first), streaming)
        written_unique = query(f"SELECT count(*) FROM {tables[0]} WHERE NOT is_duplicate")[0][0]
        assert written_unique >= 10  # without their originals, most copies are unique for now
        produce(kafka_broker.bootstrap, "wire", [line.encode() for line in lines if line not in first])
        wait_for(len(lines), streaming)
        streaming.send_signal(signal.SIGINT)  # drains: every correction still due is written
        _, err = streaming.communicate(timeout=120)
        assert streaming.returncode == 0, err
        assert err.strip().splitlines()[-1] == backfill.stderr.strip().splitlines()[-1]
        clusters = [set(query(f"SELECT event_id, cluster_id, is_duplicate, duplicate_of, update_of "
                              f"FROM {table}")) for table in tables]
        assert len(clusters[0]) == len(lines) and clusters[0] == clusters[1]
        assert query(f"SELECT count(*) FROM {tables[0]} WHERE cluster_revision > 0")[0][0] >= written_unique
    finally:
        with psycopg.connect(SERVER, autocommit=True) as connection:
            for table in tables:
                connection.execute(f"DROP TABLE IF EXISTS {table}, {table}_dead_letters")


def test_wirestream_broker_runs_apache_kafka_until_ctrl_c(tmp_path):
    require_engine(KafkaBroker.missing())
    from wirestream.pipelines.kafka_commands import free_port
    port = free_port()
    broker = subprocess.Popen([sys.executable, "-m", "wirestream.pipelines.cli", "broker", "--port", str(port)],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        line = broker.stdout.readline()  # printed once it listens
        assert line.startswith(f"broker listening: kafka://127.0.0.1:{port}"), broker.stderr.read()
        assert f"Apache Kafka {engines.KAFKA_VERSION}" in line
        produce(f"127.0.0.1:{port}", "hello", [b"one", b"two"])
        assert [r.value for r in read_topic(f"127.0.0.1:{port}", "hello")] == [b"one", b"two"]
    finally:
        broker.send_signal(signal.SIGINT)
        _, err = broker.communicate(timeout=60)
    assert broker.returncode == 0, err
    assert err.strip().splitlines()[-1] == "broker stopped"
    left = [p for p in Path(tempfile.gettempdir()).glob("wirestream-kafka-*/server.properties")
            if f"PLAINTEXT://127.0.0.1:{port}," in p.read_text()]
    assert not left  # its log directory is gone with it


def test_partitions_added_while_a_run_is_live_are_read(kafka_broker, tmp_path):
    from kafka.admin import KafkaAdminClient, NewPartitions
    kafka = f"kafka://{kafka_broker.bootstrap}"
    create_topic(kafka_broker.bootstrap, "growing", 1)

    def story(i):
        return json.dumps({"id": f"g{i}", "headline": f"Harbour news {i}",
                           "body": f"Ships number {i} docked."}).encode()

    produce(kafka_broker.bootstrap, "growing", [story(0)], partitions=1)
    streaming = subprocess.Popen(
        [sys.executable, "-m", "wirestream.pipelines.cli", "run", "--source", f"{kafka}/growing?group=g",
         "--sink", f"{kafka}/events", "--kafka-discovery-interval", "1"], cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not read_topic(kafka_broker.bootstrap, "events", seconds=0.5):
            assert time.monotonic() < deadline and streaming.poll() is None, streaming.stderr.read()
        admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
        admin.create_partitions({"growing": NewPartitions(3)})
        admin.close()
        from kafka import KafkaProducer
        producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
        deadline = time.monotonic() + 30
        while len(producer.partitions_for("growing")) < 3:  # the producer's metadata catches up
            assert time.monotonic() < deadline
            time.sleep(0.5)
        for partition in (1, 2):
            producer.send("growing", value=story(partition), partition=partition)
        producer.flush()
        producer.close()
        deadline = time.monotonic() + 90
        while len(read_topic(kafka_broker.bootstrap, "events", seconds=0.5)) < 3:
            assert time.monotonic() < deadline and streaming.poll() is None, streaming.stderr.read()
    finally:
        streaming.send_signal(signal.SIGINT)
        _, err = streaming.communicate(timeout=60)
    assert streaming.returncode == 0, err
    assert sorted(o["partition"] for o in origins(read_topic(kafka_broker.bootstrap, "events"))) == [0, 1, 2]
    assert committed(kafka_broker.bootstrap, "g", "growing") == {0: 1, 1: 1, 2: 1}


def test_a_compacted_output_topic_takes_events_and_dead_letters(kafka_broker, stories, tmp_path):
    """Compacted topics refuse records without a key: every event and dead
    letter is keyed (event_id, dead_letter_id), so a replay writes them all."""
    kafka = f"kafka://{kafka_broker.bootstrap}"
    for topic in ("compacted", "compacted.dlq"):
        create_topic(kafka_broker.bootstrap, topic, 2, **{"cleanup.policy": "compact"})
    assert wirestream("produce", "--to", f"{kafka}/wire", str(stories), cwd=tmp_path).returncode == 0
    produce(kafka_broker.bootstrap, "wire", MALFORMED)
    run = wirestream("run", "--source", f"{kafka}/wire?stop=end", "--sink", f"{kafka}/compacted",
                     cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    summary = dict(part.split("=") for part in run.stderr.strip().splitlines()[-1].split())
    events = read_topic(kafka_broker.bootstrap, "compacted")
    dead = read_topic(kafka_broker.bootstrap, "compacted.dlq")
    assert len(events) == int(summary["unique"]) + int(summary["duplicates"]) > 0
    assert len(dead) == int(summary["dead_letters"]) >= len(MALFORMED)
    assert all(r.key for r in events + dead)
    assert {r.key.decode() for r in events} == {json.loads(r.value)["event_id"] for r in events}



# Flink embedded: the job server's own Flink cluster, 2 subtasks per stage, so the two
# partitions and the de-duplication keys (state and event-time timers held by Flink)
# are spread over two workers.
FLINK_EMBEDDED = ["--runner", "FlinkRunner", "--flink_master=[local]", "--parallelism", "2"]


@pytest.mark.parametrize("runner,groups", [
    pytest.param([], ("first", "second"), id="local"),
    # One run on Flink: each costs its job server's start-up (about 30 s) again. Its Ctrl-C
    # drain took 18 s here; LOOPBACK jobs are never cancelled mid-drain (drain_deadline).
    pytest.param(FLINK_EMBEDDED, ("first",), id="flink", marks=pytest.mark.flink),
])
def test_a_backlog_holding_copies_and_originals_ends_with_the_backfill_clusters(
        kafka_broker, shared_data, tmp_path, request, runner, groups):
    """A backlog: every payload is on the topic before the streaming run starts (a
    restart, or a first start at earliest), over 2 partitions, in wire order with
    each story delayed by 0-12 hours (so copies are often ahead of their originals),
    and five stories whose dates cannot be read: they fall back to the Kafka record
    time, 37 years after the rest. Each streaming run over the backlog (two on the
    local streaming runner, one on Flink embedded) ends, in PostgreSQL (latest
    revision), with the backfill's clusters and counts."""
    if runner:
        request.getfixturevalue("flink_job_server")  # skips with the engines' reason
    from tests.transforms.io.test_postgres import SERVER, query, server  # noqa: F401 (fixture)
    import gzip
    import random
    import psycopg
    from kafka.admin import KafkaAdminClient, NewTopic
    from benchmarks.dedup_data import reuters_date
    from wirestream.schemas.times import parse_utc_iso
    with gzip.open(shared_data / "reuters21578" / "reuters21578.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [row for row in map(json.loads, f) if 10000 <= row["newid"] < 10400]
    rng = random.Random(17)
    arrival = {row["newid"]: parse_utc_iso(reuters_date(row["date_raw"])).timestamp() + rng.uniform(0, 12 * 3600)
               for row in rows}
    for row in rng.sample(rows, 5):
        row["date_raw"] = "sometime that week"
    lines = [json.dumps(row) + "\n" for row in sorted(rows, key=lambda row: arrival[row["newid"]])]
    (tmp_path / "wire.jsonl").write_text("".join(lines), encoding="utf-8")
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    admin.create_topics([NewTopic("backlog", num_partitions=2, replication_factor=1)])
    admin.close()
    produce(kafka_broker.bootstrap, "backlog", [line.encode() for line in lines], partitions=2)
    kafka, backfill_table = f"kafka://{kafka_broker.bootstrap}", "ws_backlog_backfill"
    tables = [backfill_table, *(f"ws_backlog_{group}" for group in groups)]

    def rows_written(table):
        try:
            return query(f"SELECT count(*) FROM {table}")[0][0]
        except psycopg.errors.UndefinedTable:
            return 0

    def clusters(table):
        return set(query(f"SELECT event_id, cluster_id, is_duplicate, duplicate_of, update_of FROM {table}"))

    try:
        backfill = wirestream("run", "--source", "wire.jsonl", "--sink", f"{SERVER}?table={backfill_table}",
                              cwd=tmp_path)
        assert backfill.returncode == 0, backfill.stderr
        expected = clusters(backfill_table)
        assert len(expected) == len(rows) and sum(c[2] for c in expected) >= 10
        for group, table in zip(groups, tables[1:]):
            streaming = subprocess.Popen(
                [sys.executable, "-m", "wirestream.pipelines.cli", "run", "--source",
                 f"{kafka}/backlog?group={group}&start=earliest", "--sink", f"{SERVER}?table={table}",
                 *runner], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 300
            while rows_written(table) < len(rows) and streaming.poll() is None and time.monotonic() < deadline:
                time.sleep(1)
            streaming.send_signal(signal.SIGINT)  # drains: every correction still due is written
            _, err = streaming.communicate(timeout=120)
            assert streaming.returncode == 0, err
            assert err.strip().splitlines()[-1] == backfill.stderr.strip().splitlines()[-1]
            assert clusters(table) == expected, group
    finally:
        with psycopg.connect(SERVER, autocommit=True) as connection:
            for table in tables:
                connection.execute(f"DROP TABLE IF EXISTS {table}, {table}_dead_letters")
