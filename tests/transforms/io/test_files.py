"""File sinks (jsonl:, parquet:) against real files: bounded shards, replays, streaming rolls."""

import copy
import dataclasses
import datetime as dt
import gzip
import json
import os
import re
import time
from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_stream import TestStream as StoryStream
from apache_beam.utils.timestamp import MIN_TIMESTAMP

from wirestream.schemas import DeadLetter, EventRecord, Origin, derive_event_id, validator
from wirestream.transforms.io.files import (
    FileSinkSettings, JsonLinesFormat, ParquetFormat, RollingFileWriter, RollPolicy, arrow_schema,
    documents_to_table, publish_orphan_journals)
from wirestream.pipelines.sinks import SinkSettings, write_records
from wirestream.transforms.io.sinks import RecordKind


# Reuters PLACES codes -> ISO 3166-1 alpha-2 (historic states keep their ISO 3166-3 code).
COUNTRY = {"usa": "US", "uk": "GB", "japan": "JP", "west-germany": "DE", "france": "FR",
           "canada": "CA", "ussr": "SU", "brazil": "BR", "china": "CN", "ukraine": "UA"}


def reuters_event_records(shared_data: Path, count: int, ingested_at="2024-05-01T10:00:00Z",
                          published_at=None) -> list[EventRecord]:
    """Event records built from real Reuters-21578 stories (headline, body,
    date, places), with tags of every shape the schema allows."""
    records = []
    with gzip.open(shared_data / "reuters21578" / "reuters21578.jsonl.gz", "rt") as lines:
        for row in map(json.loads, lines):
            if not (row.get("title") and row.get("body")):
                continue
            headline, body = row["title"], row["body"]
            try:
                stamp = dt.datetime.strptime(row["date_raw"].strip().split(".")[0],
                                             "%d-%b-%Y %H:%M:%S").strftime("%Y-%m-%dT%H:%M:%SZ")
            except ValueError:  # a few Reuters dates are garbled: no publication time
                stamp = None
            countries = sorted({COUNTRY[p] for p in row["places"] if p in COUNTRY})
            event_id = derive_event_id("Reuters", str(row["newid"]), None, headline, body)
            i = len(records)
            records.append(EventRecord(
                event_id=event_id, story_id=str(row["newid"]), version=None, source="Reuters",
                headline=headline, body=body, url=None, section=None, related_headlines=[],
                published_at=published_at(i) if published_at else stamp,
                published_raw=row["date_raw"], updated_at=None, language="en",
                language_confidence=0.99, language_declared=None,
                dates_mentioned=[{"text": "Feb 26", "date": "1987-02-26"}] if i % 2 else [],
                origin=Origin(kind="file", ingested_at=ingested_at, path=row["source_file"], item=i),
                format="reuters-sgml", dateline=row.get("dateline", "").strip() or None,
                cluster_id=event_id, tags={
                    "countries": countries,
                    "places": [{"name": "Kyiv", "text": "Kiev", "kind": "city", "country": "UA",
                                "latitude": 50.45, "longitude": 30.52, "geonames_id": 703448}]
                    if i % 3 == 0 else [],
                    "people": row["people"], "organisations": [o.upper() for o in row["orgs"]],
                    "topics": [{"code": "medtop:04000000", "label": "economy, business and finance",
                                "source": "subject"}] if row["topics"] else [],
                    "event_types": []},
                quality=[]))
            if len(records) == count:
                return records
    raise AssertionError(f"only {len(records)} usable stories")


def dead_letters() -> list[DeadLetter]:
    origin = Origin(kind="file", ingested_at="2024-05-01T10:00:00Z", path="in.jsonl", line=3)
    return [DeadLetter(stage="parse", error="JSONDecodeError: Expecting value", raw=b"\xff\xfe{",
                       origin=origin),
            DeadLetter(stage="normalise", error="no text content", raw=b"<item/>",
                       origin=origin.with_item(1))]


@pytest.fixture(scope="module")
def events(shared_data):
    return reuters_event_records(shared_data, 120)


def run_bounded(records, spec: str, kind=RecordKind.EVENTS, num_shards=4):
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        (pipeline | beam.Create(records, reshuffle=False)
         | write_records(spec, kind, SinkSettings(files=FileSinkSettings(num_shards=num_shards))))


def read_jsonl(directory: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(directory.glob("*.jsonl")) for line in f.open()]


def read_parquet(directory: Path, kind=RecordKind.EVENTS) -> list[dict]:
    files = sorted(directory.glob("*.parquet"))
    return [row for f in files for row in pq.read_table(f, schema=arrow_schema(kind)).to_pylist()]


def as_parquet_rows(documents: list[dict], kind=RecordKind.EVENTS) -> list[dict]:
    return documents_to_table(documents, kind).to_pylist()


# --- bounded -------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["jsonl", "parquet"])
def test_a_file_sink_given_lists_of_records_writes_the_same_files(spec, events, tmp_path):
    """A bounded run with dedup hands its records to the sink in batches."""
    settings = SinkSettings(files=FileSinkSettings(num_shards=3))
    one, lists = tmp_path / "one", tmp_path / "lists"
    run_bounded(events, f"{spec}:{one}", num_shards=3)
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        (pipeline | beam.Create([events[i:i + 7] for i in range(0, len(events), 7)], reshuffle=False)
         | write_records(f"{spec}:{lists}", RecordKind.EVENTS, settings, batched=True))
    assert {p.name: p.read_bytes() for p in lists.iterdir()} == {p.name: p.read_bytes() for p in one.iterdir()}
    assert len(list(one.iterdir())) == 3


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_bounded_replay_replaces_and_keeps_each_event_once(events, tmp_path, fmt):
    out = tmp_path / "out"
    run_bounded(events, f"{fmt}:{out}")
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(first) == [f"events-{i:05d}-of-00004.{fmt}" for i in range(4)]

    run_bounded(list(reversed(events)), f"{fmt}:{out}")  # same input, other arrival order
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first

    run_bounded(events, f"{fmt}:{out}", num_shards=2)  # fewer shards: old ones go
    assert sorted(p.name for p in out.iterdir()) == [f"events-0000{i}-of-00002.{fmt}" for i in (0, 1)]
    expected = [e.to_dict() for e in sorted(events, key=lambda e: e.event_id)]
    if fmt == "jsonl":
        written = sorted(read_jsonl(out), key=lambda d: d["event_id"])
        assert written == expected
    else:
        written = sorted(read_parquet(out), key=lambda d: d["event_id"])
        assert written == as_parquet_rows(expected)


def test_bounded_run_removes_temporaries_of_failed_attempts(events, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".events-00001-of-00004.jsonl.0123abcd.tmp").write_text("half a li")
    (out / "notes.txt").write_text("not ours")
    run_bounded(events[:10], f"jsonl:{out}")
    assert not list(out.glob(".*")) and (out / "notes.txt").exists()


def test_parquet_columns_are_typed_for_queries(events, tmp_path):
    run_bounded(events, f"parquet:{tmp_path}")
    table = pq.read_table(tmp_path)
    assert str(table.schema.field("published_at").type) == "timestamp[ms, tz=UTC]"
    assert str(table.schema.field("origin").type.field("ingested_at").type) == "timestamp[ms, tz=UTC]"
    rows = {r["event_id"]: r for r in table.to_pylist()}
    first = rows[events[0].event_id]
    assert first["tags"]["places"][0]["geonames_id"] == 703448
    assert first["published_at"] == dt.datetime(1987, 2, 26, 15, 1, 1, tzinfo=dt.timezone.utc)
    dated = rows[events[1].event_id]["dates_mentioned"][0]
    assert (dated["text"], dated["date"]) == ("Feb 26", dt.date(1987, 2, 26))
    assert {e for e, r in rows.items() if "US" in r["tags"]["countries"]} == {
        e.event_id for e in events if "US" in e.tags["countries"]} != set()


def test_parquet_refuses_a_field_the_json_schema_does_not_declare_and_names_it(events):
    """At the top, in a struct, in a list of structs: Arrow would drop it silently."""
    document = next(e for e in events if e.tags["places"] and e.dates_mentioned).to_dict()
    assert documents_to_table([document], RecordKind.EVENTS).num_rows == 1
    for where, unknown in [("", "sentiment"), ("tags", "tags.mood"), ("origin", "origin.shard"),
                           ("tags.places", "tags.places[].population"),
                           ("dates_mentioned", "dates_mentioned[].weekday")]:
        bad = copy.deepcopy(document)
        target = bad
        for name in filter(None, where.split(".")):
            target = target[name]
        target = target[-1] if isinstance(target, list) else target
        target[unknown.rsplit(".", 1)[-1].removesuffix("[]")] = 1
        with pytest.raises(ValueError, match=re.escape(f"events field {unknown} is not in the event_record JSON Schema")):
            documents_to_table([document, bad], RecordKind.EVENTS)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_dead_letters_keep_raw_payload_and_replay_once(tmp_path, fmt):
    for _ in range(2):
        run_bounded(dead_letters(), f"{fmt}:{tmp_path}", kind=RecordKind.DEAD_LETTERS)
    expected = sorted((d.to_dict() for d in dead_letters()), key=lambda d: d["dead_letter_id"])
    if fmt == "jsonl":
        written = sorted(read_jsonl(tmp_path), key=lambda d: d["dead_letter_id"])
        assert written == expected
        check = validator("dead_letter")
        assert all(not list(check.iter_errors(d)) for d in written)
    else:
        written = sorted(read_parquet(tmp_path, RecordKind.DEAD_LETTERS),
                         key=lambda d: d["dead_letter_id"])
        assert written == as_parquet_rows(expected, RecordKind.DEAD_LETTERS)
    assert all(re.fullmatch(rf"dead_letters-0000[0-3]-of-00004\.{fmt}", p.name)
               for p in tmp_path.iterdir())


# --- streaming -----------------------------------------------------------------------------

class FakeClock:
    def __init__(self, now=1_714_557_600.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.mark.parametrize("file_format", [JsonLinesFormat, ParquetFormat])
def test_streaming_files_roll_on_records_and_time(events, tmp_path, file_format):
    clock = FakeClock()
    writer = RollingFileWriter(str(tmp_path), RecordKind.EVENTS, file_format,
                               RollPolicy(seconds=60, max_records=50), clock=clock)
    published = []
    for record in events[:70]:
        published += writer.add(record.to_dict())
        clock.now += 0.1
    writer.sync()
    assert len(published) == 1  # 50 records
    assert writer.roll_if_due() == []  # the second file is 2 s old
    hidden = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert len(hidden) == 1 and hidden[0].endswith(".journal")
    clock.now += 60
    published += writer.roll_if_due()
    names = [os.path.basename(p) for p in published]
    assert names == sorted(names) == sorted(p.name for p in tmp_path.iterdir())
    rows = read_jsonl(tmp_path) if file_format is JsonLinesFormat else read_parquet(tmp_path)
    expected = [e.to_dict() for e in events[:70]]
    assert rows == (expected if file_format is JsonLinesFormat else as_parquet_rows(expected))


def test_streaming_files_roll_on_size(events, tmp_path):
    writer = RollingFileWriter(str(tmp_path), RecordKind.EVENTS, JsonLinesFormat,
                               RollPolicy(seconds=60, max_bytes=20_000))
    for record in events:
        writer.add(record.to_dict())
    writer.close()
    sizes = [p.stat().st_size for p in sorted(tmp_path.glob("*.jsonl"))]
    assert len(sizes) > 3 and all(s < 20_000 + 10_000 for s in sizes)
    assert len(read_jsonl(tmp_path)) == len(events)


WRITER = """
import json, sys
from wirestream.transforms.io.files import JsonLinesFormat, ParquetFormat, RollingFileWriter, RollPolicy
from wirestream.transforms.io.sinks import RecordKind
directory, fmt, docs = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
writer = RollingFileWriter(directory, RecordKind.EVENTS,
                           {"jsonl": JsonLinesFormat, "parquet": ParquetFormat}[fmt],
                           RollPolicy(seconds=3600))
half = len(docs) // 2
for doc in docs[:half]:
    writer.add(doc)
writer.sync()  # the bundle is durable and acknowledged
print("synced", flush=True)
sys.stdin.readline()
for doc in docs[half:]:
    writer.add(doc)
writer.sync()
print(writer.close()[0], flush=True)
"""


def start_writer(directory, fmt, documents, tmp_path):
    import subprocess
    import sys
    docs = tmp_path / f"docs-{uuid_hex()}.json"
    docs.write_text(json.dumps(documents))
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(directory), fmt, str(docs)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[3])
    assert proc.stdout.readline().strip() == "synced"
    return proc


def uuid_hex():
    import uuid
    return uuid.uuid4().hex[:8]


def skewed_successor(directory, file_format):
    # A successor whose clock runs a year ahead: time must play no part in ownership.
    return RollingFileWriter(str(directory), RecordKind.EVENTS, file_format, RollPolicy(seconds=10),
                             clock=lambda: time.time() + 365 * 86400)


@pytest.mark.parametrize("fmt, file_format", [("jsonl", JsonLinesFormat), ("parquet", ParquetFormat)])
def test_a_paused_writer_keeps_its_journal_whatever_the_clocks_say(events, tmp_path, fmt, file_format):
    import signal
    out = tmp_path / "out"
    documents = [e.to_dict() for e in events[:10]]
    writer = start_writer(out, fmt, documents, tmp_path)
    os.kill(writer.pid, signal.SIGSTOP)  # paused (a GC pause, a stopped VM, SIGSTOP)
    try:
        successor = skewed_successor(out, file_format)
        assert successor.publish_orphans() == []
        assert publish_orphan_journals(str(out), RecordKind.EVENTS, file_format) == []
        assert [p.name.endswith(".journal") for p in out.iterdir()] == [True]
    finally:
        os.kill(writer.pid, signal.SIGCONT)
    final, _ = writer.communicate("go\n", timeout=60)
    assert writer.returncode == 0 and os.path.exists(final.strip())
    rows = read_jsonl(out) if fmt == "jsonl" else read_parquet(out)
    expected = documents if fmt == "jsonl" else as_parquet_rows(documents)
    assert sorted(rows, key=lambda r: r["event_id"]) == sorted(expected, key=lambda r: r["event_id"])


@pytest.mark.parametrize("fmt, file_format", [("jsonl", JsonLinesFormat), ("parquet", ParquetFormat)])
def test_a_killed_writers_journal_is_published_at_once_without_its_torn_line(events, tmp_path, fmt,
                                                                            file_format):
    import signal
    out = tmp_path / "out"
    documents = [e.to_dict() for e in events[:10]]
    writer = start_writer(out, fmt, documents, tmp_path)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    (journal,) = out.iterdir()
    with journal.open("ab") as handle:  # a write cut by the crash
        handle.write(b'{"event_id": "torn')
    successor = RollingFileWriter(str(out), RecordKind.EVENTS, file_format, RollPolicy(seconds=3600))
    (published,) = successor.publish_orphans()  # no waiting: the lock says the writer is gone
    assert [p.name for p in out.iterdir()] == [os.path.basename(published)]
    rows = read_jsonl(out) if fmt == "jsonl" else read_parquet(out)
    expected = documents[:5] if fmt == "jsonl" else as_parquet_rows(documents[:5])
    assert rows == expected
    assert successor.publish_orphans() == []


def test_two_live_writers_never_take_each_others_journals(events, tmp_path):
    # Two hosts whose clocks disagree by a year, writing into one directory.
    first = RollingFileWriter(str(tmp_path), RecordKind.EVENTS, ParquetFormat, RollPolicy(seconds=10))
    second = skewed_successor(tmp_path, ParquetFormat)
    for n, record in enumerate(events[:20]):
        (first if n % 2 else second).add(record.to_dict())
        first.sync()
        second.sync()
        assert first.publish_orphans() == [] and second.publish_orphans() == []
    assert len([p for p in tmp_path.iterdir() if p.name.endswith(".journal")]) == 2
    first.close()
    second.close()
    assert sorted(r["event_id"] for r in read_parquet(tmp_path)) == sorted(
        e.event_id for e in events[:20])


def rolling_file_writer(directory, policy):
    """The DoFn a streaming jsonl: sink runs, driven directly."""
    from wirestream.transforms.io.files import RollingFileSink
    from wirestream.transforms.io.sinks import WriteToRecordSink
    return WriteToRecordSink(
        lambda: RollingFileSink(str(directory), RecordKind.EVENTS, JsonLinesFormat, policy),
        RecordKind.EVENTS)


def test_background_thread_rolls_an_idle_file_on_time(events, tmp_path):
    fn = rolling_file_writer(tmp_path, RollPolicy(seconds=0.3))
    fn.setup()
    try:
        fn.start_bundle()
        for record in events[:3]:
            fn.process(record)
        list(fn.finish_bundle())
        deadline = time.time() + 5
        while not list(tmp_path.glob("*.jsonl")) and time.time() < deadline:
            time.sleep(0.05)
        assert [e["event_id"] for e in read_jsonl(tmp_path)] == [e.event_id for e in events[:3]]
    finally:
        fn.teardown()


def test_streaming_pipeline_writes_every_record_once(events, tmp_path):
    stream = StoryStream()
    for start in range(0, 40, 10):
        stream = stream.add_elements(events[start:start + 10]).advance_processing_time(1)
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    with beam.Pipeline(runner="BundleBasedDirectRunner", options=options) as pipeline:
        (pipeline | stream | write_records(
            f"jsonl:{tmp_path}", RecordKind.EVENTS,
            SinkSettings(files=FileSinkSettings(streaming=True, roll=RollPolicy(max_records=15)))))
    written = read_jsonl(tmp_path)
    assert sorted(e["event_id"] for e in written) == sorted(e.event_id for e in events[:40])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert all(p.name.startswith("events-") for p in tmp_path.iterdir())


def kafka_sourced(records):
    return [dataclasses.replace(r, origin=Origin(kind="kafka", ingested_at="2024-05-01T10:00:00Z",
                                                 topic="wires", partition=i % 2, offset=i))
            for i, r in enumerate(records)]


def test_bounded_files_acknowledge_kafka_records_once_written(events, tmp_path):
    from apache_beam.testing.util import assert_that, equal_to
    from wirestream.transforms.io.sinks import Acknowledgement
    records = kafka_sourced(events[:6])
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        written = (pipeline | beam.Create(records)
                   | write_records(f"parquet:{tmp_path}", RecordKind.EVENTS, SinkSettings()))
        assert_that(written, equal_to([Acknowledgement("wires", i % 2, i, i + 1) for i in range(6)]))
    assert len(read_parquet(tmp_path)) == 6


def test_streaming_files_acknowledge_only_after_the_bundle_is_durable(events, tmp_path):
    from wirestream.transforms.io.sinks import Acknowledgement
    fn = rolling_file_writer(tmp_path, RollPolicy())
    fn.setup()
    try:
        fn.start_bundle()
        for record in kafka_sourced(events[:3]):
            fn.process(record, timestamp=MIN_TIMESTAMP + 1)
        acks = [w.value for w in fn.finish_bundle()]
        assert acks == [Acknowledgement("wires", i % 2, i, i + 1) for i in range(3)]
        (journal,) = tmp_path.iterdir()
        assert len(journal.read_bytes().splitlines()) == 3  # flushed before acknowledging
    finally:
        fn.teardown()
    assert len(read_jsonl(tmp_path)) == 3


def test_a_json_line_is_compact_utf8_and_reads_back_as_the_record(events):
    for record in events[:50]:
        document = record.to_dict()
        line = JsonLinesFormat.line(document)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert json.loads(line) == document
        assert line == json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
    accented = {"headline": "Zürich: 北京 \u2028 \"quoted\"\ttab", "n": 3, "x": 0.25, "none": None}
    assert json.loads(JsonLinesFormat.line(accented)) == accented
    assert "Zürich".encode() in JsonLinesFormat.line(accented)  # not \u-escaped


def test_a_value_orjson_refuses_is_written_in_the_same_style():
    document = {"count": 2 ** 70, "name": "é"}
    assert JsonLinesFormat.line(document) == '{"count":1180591620717411303424,"name":"é"}\n'.encode()


# --- records rendered before their clusters are known -----------------------------------

def _written_lines(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir()}


@pytest.mark.parametrize("spilled", [False, True])
def test_rendered_and_amended_records_write_the_files_their_records_write(events, tmp_path, spilled):
    """A bounded run with dedup renders records before their clusters are known and amends
    the few a decision names: the files are those the amended records give, whether the
    lines travel in the parts or wait in spill files."""
    from wirestream.transforms.io.files import RenderedPart, RenderedShards
    spill_dir = tmp_path / "spill"
    spill_dir.mkdir()
    rendering = RenderedShards(num_shards=3, spill_dir=str(spill_dir) if spilled else None)
    batches = [copy.deepcopy(events[i:i + 16]) for i in range(0, len(events), 16)]
    amendments = {(b, row): {"cluster_id": f"cluster-{b}", "is_duplicate": True, "duplicate_of": f"lead-{b}",
                             "similarity": 0.9123, "update_of": None}
                  for b in range(0, len(batches), 2) for row in (0, 5)}
    parts, untouched = [], []
    for b, batch in enumerate(batches):
        rendered = rendering.render(batch)
        assert sorted(row for part in rendered for row in RenderedPart._make(part).rows) == list(range(len(batch)))
        mine = {row: fields for (bb, row), fields in amendments.items() if bb == b}
        amended = [rendering.amend(part, mine) for part in rendered]
        untouched += [(p, q) for p, q in zip(rendered, amended) if not set(RenderedPart._make(p).rows) & mine.keys()]
        parts += amended
        for row, fields in mine.items():
            for name, value in fields.items():
                setattr(batch[row], name, value)
    assert untouched and all(p == q for p, q in untouched)
    # Spilled, an untouched part carries only where its lines are; an amended one carries them.
    assert all(bool(RenderedPart._make(p).lines) != spilled for p, _ in untouched)
    assert bool(list(spill_dir.iterdir())) == spilled
    assert all(type(part) is tuple for part in parts)  # plain tuples: Beam encodes them without pickling
    expected, rendered_dir = tmp_path / "records", tmp_path / "rendered"
    run_bounded([r for batch in batches for r in batch], f"jsonl:{expected}", num_shards=3)
    by_shard: dict[int, list] = {}
    for part in parts:
        by_shard.setdefault(part[0], []).append(part)
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        (pipeline | beam.Create(sorted(by_shard.items()), reshuffle=False)
         | write_records(f"jsonl:{rendered_dir}", RecordKind.EVENTS,
                         SinkSettings(files=FileSinkSettings(num_shards=3)), rendered=True))
    assert _written_lines(rendered_dir) == _written_lines(expected)
    assert sum(d["is_duplicate"] for d in read_jsonl(rendered_dir)) == len(amendments)


def test_spilled_lines_cut_short_fail_the_write_and_the_spill_directory_goes_with_the_run(events, tmp_path, monkeypatch):
    import tempfile
    from wirestream.transforms.io.files import RenderedPart, RenderedShards
    from wirestream.transforms.spill import spill_directory
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with spill_directory() as directory:
        parts = [RenderedPart._make(p) for p in RenderedShards(num_shards=1, spill_dir=directory).render(events[:4])]
        (spill_file,) = {part.spill for part in parts}
        assert len(parts[0].split_lines()) == 4
        with open(spill_file, "r+b") as handle:
            handle.truncate(10)  # e.g. a full disk, or a file removed under the run
        with pytest.raises(OSError, match="bytes of rendered lines expected"):
            parts[0].split_lines()
    assert list(tmp_path.iterdir()) == []


def test_an_amended_line_keeps_every_field_in_its_place_and_exact():
    document = {"count": 2 ** 70, "x": 0.1, "big": 1e16, "cluster_id": "a", "similarity": 1.0,
                "name": "Zürich", "tags": {"n": [1, 2]}}
    line = JsonLinesFormat.line(document)
    amended = JsonLinesFormat.amended(line, {"cluster_id": "b", "similarity": 0.8765})
    assert amended == JsonLinesFormat.line({**document, "cluster_id": "b", "similarity": 0.8765})
    assert b'"count":1180591620717411303424' in amended  # not read back as a float


def test_only_bounded_jsonl_runs_take_rendered_records():
    from wirestream.pipelines.sinks import rendering
    assert rendering("jsonl:/tmp/x", SinkSettings()).num_shards == FileSinkSettings().num_shards
    assert rendering("jsonl:/tmp/x", SinkSettings(files=FileSinkSettings(streaming=True))) is None
    assert rendering("parquet:/tmp/x", SinkSettings()) is None
    assert rendering("kafka://localhost:9092/t", SinkSettings()) is None

