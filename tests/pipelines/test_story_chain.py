"""The bounded graph's fused per-story step: the same records and dead letters
as the separate stages, in one process or in forked workers."""

import gc
import json
from pathlib import Path

import pytest

from wirestream.pipelines import story_chain
from wirestream.pipelines.story_chain import (ChainSettings, run_chain, run_chain_encoded, start_local_workers,
                                              stop_local_workers)
from wirestream.schemas.coders import EventRecordCoder
from wirestream.schemas import EventRecord, Origin, RawRecord
from tests.pipelines.test_cli import SAMPLES, read_jsonl, summary_of, wirestream
from wirestream.transforms.io.archive import list_archive_files, read_archive_file
from wirestream.transforms.parse import parse_record
from wirestream.transforms.tag import tag_record
from wirestream.transforms.dedup.sketch import StorySketch, band_entries


def _raw(lines):
    return [RawRecord(line.encode(), Origin(kind="file", ingested_at="2024-06-25T00:00:00Z",
                                            path="in.jsonl", line=i + 1), "jsonl")
            for i, line in enumerate(lines)]


def _story(n, source="A"):
    return json.dumps({"id": f"s{n}", "source": source, "title": f"Story {n} from Paris",
                       "text": f"French officials said on Monday that story {n} was told in Paris."})


def test_each_stage_keeps_its_dead_letters_and_counts(monkeypatch):
    def tag_failing_for_b(record, data_dir=None):
        if record.source == "B":
            raise KeyError("tags")
        return tag_record(record, data_dir)

    monkeypatch.setattr(story_chain, "tag_record", tag_failing_for_b)
    result = run_chain(_raw([_story(1), '{"title": broken', _story(2, source="B")]), ChainSettings())
    assert result.passed == {"parse": 2, "normalise": 2, "tag": 1, "dedup": 1}
    assert [d.stage for d in result.failed["parse"]] == ["parse"]
    (tag_dead,) = result.failed["tag"]
    assert tag_dead.error_kind == "code" and "KeyError" in tag_dead.traceback
    assert json.loads(tag_dead.raw)["source"] == "B"  # the record as it reached the stage
    assert result.dead_letters == result.failed["parse"] + result.failed["tag"]
    ((record, sketch),) = result.outputs
    assert isinstance(record, EventRecord) and record.tags["countries"] == ["FR"]
    assert sketch[1] == record.event_id


def test_normalise_runs_in_phases_and_a_story_failing_in_one_is_a_normalise_dead_letter_of_its_raw_bytes(
        monkeypatch):
    """A batch goes through normalise's phases one after another (every story cleaned,
    then every story's language detected, then the records made): counted once, and a
    story that fails in a later phase is dead-lettered with its raw bytes and origin."""
    from wirestream.transforms.normalise import NORMALISE_PHASES, normalise_story
    readable, detect, record = NORMALISE_PHASES
    order = []

    def detect_failing_for_b(readable_story, settings):
        order.append(("detect", readable_story.story.source))
        if readable_story.story.source == "B":
            raise ValueError("profiles unreadable")
        return detect(readable_story, settings)

    def readable_noted(story, settings):
        order.append(("readable", story.source))
        return readable(story, settings)

    monkeypatch.setattr(story_chain, "NORMALISE_PHASES", (readable_noted, detect_failing_for_b, record))
    raws = _raw([_story(1), _story(2, source="B"), _story(3, source="C")])
    result = run_chain(raws, ChainSettings())
    assert order == [("readable", "A"), ("readable", "B"), ("readable", "C"),
                     ("detect", "A"), ("detect", "B"), ("detect", "C")]
    assert result.passed == {"parse": 3, "normalise": 2, "tag": 2, "dedup": 2}
    (dead,) = result.dead_letters
    assert dead.stage == "normalise" and dead.error_kind == "code" and "profiles unreadable" in dead.error
    assert dead.raw == raws[1].payload and dead.origin == raws[1].origin
    expected = [normalise_story(story) for raw in (raws[0], raws[2]) for story in parse_record(raw)]
    assert [r.to_dict() for r, _ in result.outputs] == [tag_record(r).to_dict() for r in expected]


def test_forked_workers_give_the_records_one_process_gives():
    raws = [raw for archive in list_archive_files(str(SAMPLES)) for raw in read_archive_file(archive)]
    settings = ChainSettings()
    inline = run_chain(raws, settings)
    before = gc.get_threshold()
    assert start_local_workers(2, settings) == 2
    assert gc.get_threshold() == story_chain._COLLECTOR_THRESHOLDS != before
    try:
        pool = story_chain._WORKERS
        halves = [pool.apply_async(run_chain, (part, settings)) for part in (raws[:150], raws[150:])]
        forked = [half.get() for half in halves]
    finally:
        stop_local_workers()
    assert story_chain._WORKERS is None
    assert gc.get_threshold() == before  # the collector's settings are the caller's again
    assert [r.to_dict() for r, _ in inline.outputs] == [r.to_dict() for f in forked for r, _ in f.outputs]
    assert [s for _, s in inline.outputs] == [s for f in forked for _, s in f.outputs]
    assert [d.to_dict() for d in inline.dead_letters] == [d.to_dict() for f in forked for d in f.dead_letters]
    assert len(inline.outputs) == 305 and len(inline.dead_letters) == 8


@pytest.mark.parametrize("parse_only", [False, True])
def test_records_leave_a_worker_encoded_and_decode_to_the_same_records(parse_only):
    raws = _raw([_story(1), '{"title": broken', _story(2, source="B")])
    settings = ChainSettings(parse_only=parse_only)
    plain, encoded = run_chain(raws, settings), run_chain_encoded(raws, settings)
    assert encoded.encoded and not plain.encoded
    coder = EventRecordCoder()
    if parse_only:
        assert all(isinstance(out, bytes) for out in encoded.outputs)
        assert [coder.decode(out).to_dict() for out in encoded.outputs] == [r.to_dict() for r in plain.outputs]
        assert len(encoded.outputs) == 2
    else:  # one batch: the records encoded, their stories' uids, sketches and bucket keys
        (records, uids, sketches, bands), = encoded.outputs
        assert [(coder.decode(r).to_dict(), s) for r, s in zip(records, sketches)] == \
            [(r.to_dict(), s) for r, s in plain.outputs]
        assert uids == [s[0] for _, s in plain.outputs] and len(records) == 2
        assert bands == band_entries([StorySketch._make(s) for _, s in plain.outputs], settings.dedup,
                                     settings.dedup.band_partitions)
    assert [d.to_dict() for d in encoded.dead_letters] == [d.to_dict() for d in plain.dead_letters]


def test_one_process_or_two_write_the_same_files(tmp_path):
    runs = {}
    for workers in ("1", "2"):
        out = tmp_path / workers
        proc = wirestream("run", "--source", str(SAMPLES), "--sink", f"jsonl:{out}",
                          "--local-workers", workers)
        assert proc.returncode == 0, proc.stderr
        runs[workers] = (summary_of(proc), sorted(map(json.dumps, read_jsonl(out))),
                         sorted(map(json.dumps, read_jsonl(out / "dead-letter"))))
    assert runs["1"] == runs["2"]
    assert runs["1"][0]["read"] == 313 and len(runs["1"][1]) == 305


def test_a_local_run_keeps_its_lines_and_sketches_in_a_temporary_directory_it_removes(tmp_path, monkeypatch):
    """The rendered lines and the sketches wait for the clusters in files under TMPDIR,
    not in what Beam carries, and the bucket keys go in one partition, clustered in one
    step; the files written are those of a run that carries everything through Beam's
    shuffles in the default partitions, and nothing spilled is left once the run is over."""
    import tempfile
    from wirestream.pipelines import cli
    from wirestream.transforms.dedup import batch
    from wirestream.transforms.io import files
    spilled = {"lines": [], "sketches": []}  # (directory, size) per spill
    for module, what in ((files, "lines"), (batch, "sketches")):
        monkeypatch.setattr(module, "spilled", lambda directory, data, spill=module.spilled, sizes=spilled[what]: (
            sizes.append((directory, len(data))) or spill(directory, data)))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    partitions = {"spilled": set(), "carried": set()}  # of the bucket keys, per run
    entries = batch.band_entries
    outputs = {}
    for name in ("spilled", "carried"):
        monkeypatch.setattr(batch, "band_entries", lambda sketches, settings, count, used=partitions[name]: used.add(
            count) or entries(sketches, settings, count))
        if name == "carried":  # no run in this process as such: no spill, no forked workers
            monkeypatch.setattr(cli, "_in_process", lambda options: False)
        summary, _ = cli.run(["--source", str(SAMPLES), "--sink", f"jsonl:{tmp_path / name}",
                              "--local-workers", "1", "--progress", "off"])
        assert summary.read == 313 and summary.adds_up
        outputs[name] = {p.relative_to(tmp_path / name): p.read_bytes() for p in sorted((tmp_path / name).rglob("*.jsonl"))}
    assert {Path(directory).parent for sizes in spilled.values() for directory, _ in sizes} == {tmp_path}
    assert sum(size for _, size in spilled["lines"]) > 300 * 1000  # the lines of all 305 records, about 2 kB each
    assert sum(size for _, size in spilled["sketches"]) > 305 * 500  # a sketch holds a 512-byte signature
    assert sorted(p.name for p in tmp_path.iterdir()) == ["carried", "spilled"]
    assert outputs["spilled"] == outputs["carried"] and len(outputs["spilled"]) > 4
    # Run in this process, every bucket partition is this process's: one, not the default 16.
    assert partitions == {"spilled": {1}, "carried": {16}}


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_local_workers_must_be_at_least_one(tmp_path, workers):
    proc = wirestream("run", "--source", str(SAMPLES), "--sink", f"jsonl:{tmp_path}",
                      "--local-workers", workers)
    assert proc.returncode == 2 and "--local-workers must be at least 1" in proc.stderr


def test_a_batchs_parsed_texts_are_known_clean_when_normalise_cleans_them_again(monkeypatch):
    # A batch is parsed whole before it is normalised: the cache of clean texts must
    # still hold the batch's headlines, bodies and datelines when normalise asks.
    from wirestream.transforms.normalise import text
    parsed = [text.clean_text(f"Story {i}  from Paris, {part}") for i in range(story_chain.BATCH_STORIES)
              for part in ("headline", "body", "dateline")]
    checked = []
    monkeypatch.setattr(text, "_is_clean_ascii", lambda t: checked.append(t) or True)
    assert all(text.clean_text(t) is t for t in parsed)
    assert checked == []


_AFTER_WARM_UP = """
import json, sys
import pycountry
from wirestream.pipelines.story_chain import ChainSettings, run_chain_encoded, warm_up
from wirestream.transforms.dedup import sketch
from wirestream.transforms.io.archive import list_archive_files, read_archive_file
from wirestream.transforms.normalise import language
from wirestream.transforms.normalise import text as normalise_text
from wirestream.transforms.tag import text

def loaded():
    kernels = {fn.__name__: len(getattr(module, fn.__name__).signatures)
               for module in (sketch, language, normalise_text, text) for fn in module._KERNELS._functions
               if module._KERNELS.compiled}
    # the ISO 639 table the warm-up loads; whether pycountry's languages are loaded
    # (they are only to build that table, when it is not cached yet)
    return kernels, [language._iso_639_codes.cache_info().currsize, pycountry.languages._is_loaded]

raws = [raw for archive in list_archive_files(sys.argv[1]) for raw in read_archive_file(archive)]
warm_up(ChainSettings())
before = loaded()
result = run_chain_encoded(raws, ChainSettings())
print(json.dumps([before, loaded(), result.passed["dedup"]]))
"""


def test_after_the_warm_up_a_worker_loads_no_kernel_nor_table_of_its_own(tmp_path):
    """What the nursery loads its workers share; what a worker loads itself, each loads again."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", _AFTER_WARM_UP, str(SAMPLES)], capture_output=True, text=True,
                         check=True).stdout
    (before, languages_before), (after, languages_after), records = json.loads(out.splitlines()[-1])
    assert records > 250  # the samples' stories went through every stage
    assert languages_before[0] == 1  # the warm-up loaded the ISO 639 table
    assert languages_after == languages_before  # and no story made a worker load pycountry's languages
    # (a kernel only other kernels call has no version of its own)
    assert all(before[name] for name in ("_add_rows_kernel", "_add_and_lead_kernel", "_score_words_kernel",
                                         "_ascii_items_kernel", "_ascii_sketch", "_ascii_cleaned_kernel"))
    assert after == before
