"""`wirestream run` end to end over real archive files, as a user runs it."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from wirestream.schemas import validator

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples" / "archive"
SUMMARY = re.compile(r"^read=(\d+) unique=(\d+) duplicates=(\d+) dead_letters=(\d+) errors=(\d+)$")


def wirestream(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "wirestream.pipelines.cli", *args], cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=900)


def summary_of(proc) -> dict:
    (match,) = [m for m in map(SUMMARY.match, proc.stderr.strip().splitlines()) if m] or [None]
    assert match, proc.stderr
    return dict(zip(("read", "unique", "duplicates", "dead_letters", "errors"),
                    map(int, match.groups())))


def read_jsonl(directory: Path, pattern="*.jsonl") -> list[dict]:
    return [json.loads(line) for f in sorted(directory.glob(pattern)) for line in f.open()]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    proc = wirestream("run", "--source", str(SAMPLES), "--sink", f"jsonl:{out}")
    assert proc.returncode == 0, proc.stderr
    return proc, out


def test_demo_counts_add_up_and_match_the_files(demo_run):
    proc, out = demo_run
    counts = summary_of(proc)
    events, dead = read_jsonl(out), read_jsonl(out / "dead-letter")
    assert counts["read"] == counts["unique"] + counts["duplicates"] + counts["dead_letters"]
    # 300 Reuters stories + seed + 2 ninjs + 7 NewsML-G2 documents (one holds 4 items)
    assert counts["read"] == 300 + 1 + 2 + 6 + 4
    assert len(events) == counts["unique"] + counts["duplicates"]
    assert sum(not e["is_duplicate"] for e in events) == counts["unique"]
    assert len(dead) == counts["dead_letters"] > 0
    assert len({e["event_id"] for e in events}) == len(events)


def test_every_output_is_valid_against_its_json_schema(demo_run):
    _, out = demo_run
    events_schema, dead_schema = validator("event_record"), validator("dead_letter")
    for record in read_jsonl(out):
        assert not list(events_schema.iter_errors(record)), record["event_id"]
    for record in read_jsonl(out / "dead-letter"):
        assert not list(dead_schema.iter_errors(record)), record["origin"]


def test_dead_letters_keep_the_raw_payload_byte_for_byte(demo_run):
    _, out = demo_run
    dead = {Path(d["origin"]["path"]).name: d for d in read_jsonl(out / "dead-letter")
            if "item" not in d["origin"]}
    listing = dead["LISTING_1_A_NewsML-G2_News_Item.xml"]
    assert listing["raw_encoding"] == "utf-8" and "no text content" in listing["error"]
    assert listing["raw"].encode("utf-8") == (
        SAMPLES / "newsml-g2" / "LISTING_1_A_NewsML-G2_News_Item.xml").read_bytes()


def test_seed_story_event_record(demo_run):
    _, out = demo_run
    (seed,) = [e for e in read_jsonl(out) if e["format"] == "text"]
    assert seed["section"] == "Geopolitics"
    assert "Peace Proposal for Ukraine" in seed["headline"]
    assert len(seed["related_headlines"]) == 2 and "Netanyahu" not in seed["body"]
    assert seed["language"] == "en" and seed["story_id"].startswith("sha256:")


def test_same_input_same_files_and_second_run_replaces(demo_run, tmp_path):
    proc, first = demo_run
    second = tmp_path / "again"
    assert wirestream("run", "--source", str(SAMPLES), "--sink", f"jsonl:{second}").returncode == 0
    for path in sorted(first.rglob("*.jsonl")):
        assert path.read_bytes() == (second / path.relative_to(first)).read_bytes(), path
    # A rerun with fewer shards into the same directory replaces, never appends.
    rerun = wirestream("run", "--source", str(SAMPLES), "--sink", f"jsonl:{second}", "--num-shards", "2")
    assert rerun.returncode == 0, rerun.stderr
    assert sorted(p.name for p in second.glob("*.jsonl")) == [
        "events-00000-of-00002.jsonl", "events-00001-of-00002.jsonl"]
    assert sorted(e["event_id"] for e in read_jsonl(second)) == sorted(
        e["event_id"] for e in read_jsonl(first))


def test_named_direct_runner_gives_the_same_records(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(SAMPLES / "seed-story.txt", src)
    shutil.copy(SAMPLES / "dpa_text.json", src)
    proc = wirestream("run", "--source", str(src), "--sink", f"jsonl:{tmp_path / 'out'}",
                      "--runner", "DirectRunner")
    assert proc.returncode == 0, proc.stderr
    assert summary_of(proc) == {"read": 2, "unique": 2, "duplicates": 0, "dead_letters": 0, "errors": 0}
    assert {e["format"] for e in read_jsonl(tmp_path / "out")} == {"text", "ninjs"}


def test_exact_duplicates_and_bad_lines_in_one_file(tmp_path):
    story = {"title": "Quake hits", "text": "An earthquake hit the coast on Monday.",
             "published": "2024-06-24T08:00:00Z", "source": "A", "id": "a-1"}
    copy = dict(story, source="B", id="b-7", published="2024-06-24T09:30:00Z")
    lines = [json.dumps(story), json.dumps(copy), '{"title": broken', '\xff']
    (tmp_path / "in.jsonl").write_bytes("\n".join(lines[:3]).encode() + b"\n\xff\xfe\n")
    proc = wirestream("run", "--source", str(tmp_path / "in.jsonl"), "--sink", f"jsonl:{tmp_path / 'o'}")
    assert summary_of(proc) == {"read": 4, "unique": 1, "duplicates": 1, "dead_letters": 2, "errors": 0}
    events = {e["source"]: e for e in read_jsonl(tmp_path / "o")}
    assert not events["A"]["is_duplicate"] and events["B"]["is_duplicate"]
    assert events["B"]["duplicate_of"] == events["A"]["event_id"]
    assert events["A"]["cluster_id"] == events["B"]["cluster_id"]
    dead = sorted(read_jsonl(tmp_path / "o" / "dead-letter"), key=lambda d: d["origin"]["line"])
    assert [d["origin"]["line"] for d in dead] == [3, 4]
    assert "malformed JSON" in dead[0]["error"] and dead[0]["raw"] == '{"title": broken'
    assert dead[1]["raw_encoding"] == "base64" and "invalid UTF-8" in dead[1]["error"]


def test_drop_duplicates_leaves_them_out_of_the_sink_but_counts_them(tmp_path):
    story = {"title": "Quake hits", "text": "An earthquake hit the coast on Monday.",
             "published": "2024-06-24T08:00:00Z", "source": "A", "id": "a-1"}
    copy = dict(story, source="B", id="b-7", published="2024-06-24T09:30:00Z")
    (tmp_path / "in.jsonl").write_text(f"{json.dumps(copy)}\n{json.dumps(story)}\n")
    proc = wirestream("run", "--source", str(tmp_path / "in.jsonl"), "--sink", f"jsonl:{tmp_path / 'o'}",
                      "--drop-duplicates")
    assert summary_of(proc) == {"read": 2, "unique": 1, "duplicates": 1, "dead_letters": 0, "errors": 0}
    assert [e["source"] for e in read_jsonl(tmp_path / "o")] == ["A"]


def test_drop_duplicates_always_writes_a_streaming_re_emission():
    from wirestream.pipelines.graph import dropped_as_duplicate
    from tests.transforms.dedup.stories import story
    first_copy, original = story("c", "Copy."), story("r", "Copy.")
    first_copy.is_duplicate = True
    assert dropped_as_duplicate(first_copy) and not dropped_as_duplicate(original)
    first_copy.cluster_revision = 1  # a story first written as unique, now known to be a copy
    assert not dropped_as_duplicate(first_copy)


@pytest.mark.parametrize("args,message", [
    (["run", "--sink", "jsonl:x"], "--source is required"),
    (["run", "--source", "no/such/dir/*.jsonl"], "no archive files found"),
    (["run", "--source", "samples/archive", "--sink", "ftp:x"], "unknown sink"),
    (["run", "--source", "samples/archive", "--sourc", "x"], "unknown option --sourc"),
    (["frobnicate"], "unknown command"),
])
def test_user_errors_are_one_line_without_traceback(args, message):
    proc = wirestream(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_whole_reuters_corpus(shared_data, tmp_path):
    source = shared_data / "reuters21578" / "original" / "*.sgm"
    proc = wirestream("run", "--source", str(source), "--sink", f"jsonl:{tmp_path}")
    assert proc.returncode == 0, proc.stderr
    counts = summary_of(proc)
    assert counts["read"] == 21578
    assert counts["read"] == counts["unique"] + counts["duplicates"] + counts["dead_letters"]
    events = read_jsonl(tmp_path)
    assert len(events) == counts["unique"] + counts["duplicates"]
    schema = validator("event_record")
    assert [e["event_id"] for e in events if list(schema.iter_errors(e))] == []
    assert len({e["story_id"] for e in events}) == len(events)


def test_progress_display_on_request(tmp_path):
    proc = wirestream("run", "--source", str(SAMPLES / "newsml-g2"), "--sink", f"jsonl:{tmp_path}",
                      "--progress", "on")
    assert proc.returncode == 0, proc.stderr
    assert "files 7/7  records 7" in proc.stderr
    assert SUMMARY.match(proc.stderr.strip().splitlines()[-1])


def test_dry_run_validates_and_prints_the_graph_without_running(tmp_path):
    out = tmp_path / "never-written"
    proc = wirestream("run", "--dry-run", "--runner", "FlinkRunner", "--flink_master", "localhost:8081",
                      "--environment_type", "EXTERNAL", "--environment_config", "localhost:50000",
                      "--source", str(SAMPLES), "--sink", f"jsonl:{out}")
    assert proc.returncode == 0, proc.stderr
    described = json.loads(proc.stdout)
    assert described["options"]["flink_master"] == "localhost:8081"
    # A bounded run: the per-story stages are one fused step (pipelines/story_chain.py).
    assert {"Read", "Process/PerStory", "Process/Dedup",
            "WriteEvents", "WriteDeadLetters"} <= set(described["graph"])
    assert not list(out.rglob("*.jsonl"))
    invalid = wirestream("run", "--dry-run", "--runner", "DataflowRunner", "--source", str(SAMPLES))
    assert invalid.returncode == 2 and "Missing required option: project" in invalid.stderr


def test_portable_runner_gives_the_same_files_as_the_default_runner(demo_run, tmp_path):
    """The Job API path a Flink job server takes (embedded here) gives byte-identical output."""
    _, default_out = demo_run
    proc = wirestream("run", "--source", str(SAMPLES), "--sink", f"jsonl:{tmp_path}",
                      "--runner", "PortableRunner", "--job_endpoint", "embed",
                      "--environment_type", "LOOPBACK")
    assert proc.returncode == 0, proc.stderr
    assert summary_of(proc)["read"] == 313
    for path in sorted(default_out.rglob("*.jsonl")):
        assert path.read_bytes() == (tmp_path / path.relative_to(default_out)).read_bytes(), path


def test_damaged_and_special_archive_files_are_accounted_and_named(tmp_path):
    import gzip
    import os
    source = tmp_path / "in"
    source.mkdir()
    stories = b"".join(b'{"id": "s%d", "title": "Story number %d", "body": "Text %d of a story."}\n'
                       % (n, n, n) for n in range(50))
    whole = gzip.compress(stories)
    (source / "cut.jsonl.gz").write_bytes(whole[:len(whole) // 2])
    (source / "cut.sgm").write_bytes(
        b'<REUTERS NEWID="1">\n<TEXT><TITLE>ONE</TITLE><BODY>A body.</BODY></TEXT>\n</REUTERS>\n'
        b'<REUTERS NEWID="2">\n<TEXT><TITLE>TWO</TITLE><BODY>cut')
    (source / "deep.json").write_bytes(b"[" * 100_000 + b"]" * 100_000)
    os.mkfifo(source / "pipe.jsonl")
    out = tmp_path / "out"
    proc = wirestream("run", "--source", str(source), "--sink", f"jsonl:{out}")
    assert proc.returncode == 0, proc.stderr
    assert "pipe.jsonl" in proc.stderr and "FIFO" in proc.stderr
    counts = summary_of(proc)
    events, dead = read_jsonl(out), read_jsonl(out / "dead-letter")
    assert counts["read"] == counts["unique"] + counts["duplicates"] + counts["dead_letters"]
    assert len(dead) == counts["dead_letters"] == 3 and len(events) == counts["read"] - 3
    by_file = {os.path.basename(d["origin"]["path"]): d for d in dead}
    assert by_file["cut.jsonl.gz"]["stage"] == "read" and "truncated gzip" in by_file[
        "cut.jsonl.gz"]["error"]
    assert by_file["cut.sgm"]["stage"] == "read" and "unclosed" in by_file["cut.sgm"]["error"]
    assert by_file["deep.json"]["stage"] == "parse" and "nested" in by_file["deep.json"]["error"]
    assert len(events) > 10  # the stories before the cut are written


def test_a_code_error_on_every_story_fails_the_run_unless_tolerated(tmp_path):
    # A tagging data file that cannot be loaded makes the tag stage raise on every
    # story: not the stories' fault, so the run must not look like a success.
    data = tmp_path / "tagdata"
    data.mkdir()
    (data / "people.json").write_text("{ this is not json")
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": f"s{n}", "title": f"Story {n}",
                                          "text": f"Text of story {n}."}) + "\n" for n in range(3)))
    out = tmp_path / "out"
    proc = wirestream("run", "--source", str(source), "--sink", f"jsonl:{out}",
                      "--tag-data-dir", str(data))
    assert proc.returncode == 1, proc.stderr
    assert summary_of(proc) == {"read": 3, "unique": 0, "duplicates": 0, "dead_letters": 3,
                                "errors": 3}
    assert "3 code error(s)" in proc.stderr and "--errors-tolerance all" in proc.stderr
    assert "Traceback (most recent call last)" in proc.stderr  # logged at the default level
    dead = read_jsonl(out / "dead-letter")
    assert len(dead) == 3 and {d["error_kind"] for d in dead} == {"code"}
    assert {d["stage"] for d in dead} == {"tag"}
    assert all("JSONDecodeError" in d["error"] and d["traceback"].startswith("Traceback")
               for d in dead)
    tolerated = wirestream("run", "--source", str(source), "--sink", f"jsonl:{tmp_path / 'o2'}",
                           "--tag-data-dir", str(data), "--errors-tolerance", "all")
    assert tolerated.returncode == 0 and summary_of(tolerated)["errors"] == 3


def test_data_errors_alone_exit_zero_with_no_code_errors(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"title": broken\n{"id": "x", "title": "T", "text": "Body."}\n')
    proc = wirestream("run", "--source", str(source), "--sink", f"jsonl:{tmp_path / 'o'}")
    assert proc.returncode == 0, proc.stderr
    assert summary_of(proc) == {"read": 2, "unique": 1, "duplicates": 0, "dead_letters": 1,
                                "errors": 0}
    (dead,) = read_jsonl(tmp_path / "o" / "dead-letter")
    assert dead["error_kind"] == "data" and dead["traceback"] is None


def test_a_state_stream_the_runner_closed_prints_no_traceback_and_other_thread_errors_still_do(
        capsys, monkeypatch):
    """Prism closes the SDK harness's state stream as a job ends: the harness's
    "read_state" thread raised, and its traceback followed a successful run."""
    import threading

    import grpc

    from wirestream.pipelines.cli import quiet_closed_state_stream
    with grpc.insecure_channel("127.0.0.1:1") as channel:  # nothing listens there
        try:
            channel.unary_unary("/beam.State/State")(b"", timeout=5)
        except grpc.RpcError as exc:
            closed = exc
    assert closed.code() == grpc.StatusCode.UNAVAILABLE
    monkeypatch.setattr(threading, "excepthook", quiet_closed_state_stream)

    def raising(error):
        def run():
            raise error
        return run

    for name, error in (("read_state", closed), ("worker", closed), ("read_state", ValueError("a bug"))):
        thread = threading.Thread(target=raising(error), name=name)
        thread.start()
        thread.join()
    printed = capsys.readouterr().err
    assert printed.count("Traceback") == 2
    assert "in thread worker" in printed and "ValueError: a bug" in printed
    assert "in thread read_state" in printed  # the ValueError's, not the closed stream's
