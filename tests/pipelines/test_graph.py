"""The graph's order of stages: tagging runs before de-duplication, and
dedup's own failures become dead letters like any other stage's."""

import json
from dataclasses import replace

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

import wirestream.pipelines.graph
import wirestream.pipelines.story_chain
from wirestream.pipelines.graph import PipelineSettings, StoriesToEventRecords
from wirestream.pipelines.sinks import SinkSettings
from wirestream.transforms.io.files import FileSinkSettings
from wirestream.schemas import Origin, RawRecord
from wirestream.transforms.tag import tag_record

ORIGINAL = {"title": "Quake hits the coast", "source": "A", "id": "a-1", "published": "2024-06-24T08:00:00Z",
            "text": "An earthquake of magnitude 6.1 hit the northern coast on Monday, the geological "
                    "survey said, damaging roads and cutting power to thousands of homes in three "
                    "provinces while rescue teams searched collapsed buildings for survivors. Officials "
                    "said schools would stay closed for the rest of the week as engineers inspected "
                    "bridges and hospitals across the region."}
COPY = dict(ORIGINAL, title="Earthquake strikes coast", source="B", id="b-7", published="2024-06-24T09:30:00Z")


def _raw(items):
    return [RawRecord(json.dumps(item).encode(), Origin(kind="file", ingested_at="2024-06-25T00:00:00Z",
                                                        path="in.jsonl", line=i + 1), "jsonl")
            for i, item in enumerate(items)]


def _tag_failing_for_source_a(record, data_dir=None):
    if record.source == "A":
        raise ValueError("gazetteer broke")
    return tag_record(record, data_dir)


def _run(items, monkeypatch, streaming=False):
    monkeypatch.setattr(wirestream.pipelines.graph, "tag_record", _tag_failing_for_source_a)  # streaming
    monkeypatch.setattr(wirestream.pipelines.story_chain, "tag_record", _tag_failing_for_source_a)  # bounded
    settings = PipelineSettings(sink="unused", dead_letter="unused")
    if streaming:
        from dataclasses import replace
        settings = replace(settings, dedup=replace(settings.dedup, streaming=True))
    with beam.Pipeline(runner="FnApiRunner") as p:
        events, dead = p | beam.Create(_raw(items)) | StoriesToEventRecords(settings)
        assert_that(events | beam.Map(lambda r: (r.source, r.is_duplicate, r.duplicate_of)),
                    equal_to([("B", False, None)]), label="Events")
        assert_that(dead | beam.Map(lambda d: (d.stage, d.error)),
                    equal_to([("tag", "ValueError: gazetteer broke")]), label="DeadLetters")


def test_the_copy_is_a_duplicate_when_tagging_succeeds():
    with beam.Pipeline(runner="FnApiRunner") as p:
        events, _ = p | beam.Create(_raw([ORIGINAL, COPY])) | StoriesToEventRecords(
            PipelineSettings(sink="unused", dead_letter="unused"))
        assert_that(events | beam.Map(lambda r: (r.source, r.is_duplicate)),
                    equal_to([("A", False), ("B", True)]))


def test_a_leader_that_fails_tagging_leaves_no_copy_pointing_at_it(monkeypatch):
    # Tagged after dedup, B was a duplicate of A, which was never written.
    _run([ORIGINAL, COPY], monkeypatch)


def test_the_same_in_streaming(monkeypatch):
    _run([COPY, ORIGINAL], monkeypatch, streaming=True)


def _files_of_a_run(raws, out, monkeypatch, rendered: bool, spill_dir=None):
    from wirestream.pipelines import sinks
    from wirestream.pipelines.graph import Source, build_pipeline
    from wirestream.transforms.io.files import RenderedShards
    amended = []
    if rendered:
        amend = RenderedShards.amend
        monkeypatch.setattr(RenderedShards, "amend", lambda self, parts, fields: amended.append(fields) or amend(
            self, parts, fields))
    else:
        monkeypatch.setitem(sinks.SINKS, "jsonl", replace(sinks.SINKS["jsonl"], rendering=lambda spec, s: None))
    with beam.Pipeline(runner="FnApiRunner") as p:
        build_pipeline(p, Source(beam.Create(raws, reshuffle=False), bounded=True),
                       PipelineSettings(sink=f"jsonl:{out}", dead_letter=f"jsonl:{out}/dead-letter",
                                        sink_settings=SinkSettings(files=FileSinkSettings(spill_dir=spill_dir))))
    monkeypatch.undo()
    assert bool(amended) == rendered and (not rendered or any(amended))  # the path asked for was taken
    return {str(f.relative_to(out)): f.read_bytes() for f in sorted(out.rglob("*.jsonl"))}


def test_records_rendered_before_their_clusters_give_the_files_of_records_rendered_after(tmp_path, monkeypatch):
    """A bounded jsonl run renders its records where they are made (the command's
    workers) and amends the duplicates: the same bytes, the same counts."""
    from tests.pipelines.test_cli import SAMPLES
    from wirestream.transforms.io.archive import list_archive_files, read_archive_file
    raws = [raw for archive in list_archive_files(str(SAMPLES)) for raw in read_archive_file(archive)]
    raws += _raw([ORIGINAL, COPY])  # a duplicate whose leader is in another batch
    after = _files_of_a_run(raws, tmp_path / "after", monkeypatch, rendered=False)
    before = _files_of_a_run(raws, tmp_path / "before", monkeypatch, rendered=True)
    (tmp_path / "spill").mkdir()
    spilled = _files_of_a_run(raws, tmp_path / "spilled", monkeypatch, rendered=True, spill_dir=str(tmp_path / "spill"))
    assert before == after == spilled and any((tmp_path / "spill").iterdir())
    lines = [json.loads(line) for name, data in before.items() if not name.startswith("dead")
             for line in data.splitlines()]
    assert len(lines) == 307 and sum(d["is_duplicate"] for d in lines) == 5
