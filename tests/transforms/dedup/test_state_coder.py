"""Streaming state survives a savepoint: an explicit, versioned encoding that a
later release must keep reading."""

import json
import zlib
from pathlib import Path

import pytest

from tests.transforms.dedup.stories import OTHER_STORY, STORY, story
from wirestream.transforms.dedup import DedupSettings
from wirestream.transforms.dedup import state_coder
from wirestream.transforms.dedup.decide import ClusterDecision, cluster_id_for
from wirestream.transforms.dedup.sketch import record_uid, sketch_record
from wirestream.transforms.dedup.streaming_state import (BucketMembers, ClusterMember, RootFlag, StoredSketch, StoryRelations,
                                              pack_member, relate_with_stored)

# Written by earlier releases: this one must decode them. Version 3 is this release;
# of version 1's states, those whose steps remain (the cluster member, the record).
WRITTEN_BY = {version: Path(__file__).parent / "data" / f"state_v{version}.json" for version in (1, 2, 3)}
RECORD_DICTIONARY_CRC = 1181330110
# States that hold an encoded sketch: one written by an earlier release holds it in that release's version.
HOLDS_A_SKETCH = {"pending comparison": lambda b: state_coder.SKETCH.decode(b),
                  "stored sketch": lambda s: (s.arrival, state_coder.SKETCH.decode(s.sketch)._replace(uid=None))}


def states():
    """One of each state, as a short run leaves them: a copy arrived before its original."""
    settings = DedupSettings()
    original = story("r1", STORY)
    copy_ = story("c1", STORY + " Reuter", "1987-03-02T11:00:00Z", "Fed adds reserves", source="courier")
    other = story("x1", OTHER_STORY, "1987-03-02T10:30:00Z", "JAPAN SURPLUS NARROWS")
    sketches = [sketch_record(r, settings) for r in (copy_, other, original)]
    bucket = [pack_member(s.uid, s.time, 541_000_000 + i) for i, s in enumerate(sketches)]
    assert BucketMembers(bucket[:2]).add(sketches[2].uid, sketches[2].time, 0, settings).candidates
    late = relate_with_stored(sketches[0], sketches[2], settings).late
    relations = StoryRelations(expected=33, answered=33, incoming={late.earlier_uid: late},
                               asked={late.earlier_uid}, root=False, sent=1)
    waiting = StoryRelations(expected=33, answered=2, waiting={sketches[2].uid}, compared={sketches[1].uid})
    flag = RootFlag(root=True, seq=0, askers=[sketches[0].uid])
    member = ClusterMember(event_id=copy_.event_id, seq=1, incoming=[late],
                           answers={late.earlier_uid: (True, 0)},
                           emitted=ClusterDecision("c" * 32, True, original.event_id, late.similarity),
                           revision=1)
    original.quality = ["published_at: not given by the source; ingest time used"]
    return {"sketch": (state_coder.SKETCH, sketches[2]),
            "bucket members": (state_coder.BUCKET_RUN, b"".join(bucket)),
            "pending comparison": (state_coder.PENDING_COMPARISON, state_coder.SKETCH.encode(sketches[0])),
            "stored sketch": (state_coder.STORED_SKETCH,  # stored without its uid, the key
                              StoredSketch(541_000_002, state_coder.SKETCH.encode(sketches[2]._replace(uid=None)))),
            "story relations": (state_coder.STORY_RELATIONS, relations),
            "story relations waiting": (state_coder.STORY_RELATIONS, waiting),
            "root flag": (state_coder.ROOT_FLAG, flag),
            "cluster member": (state_coder.CLUSTER_MEMBER, member),
            "record": (state_coder.RECORD, original)}


@pytest.mark.parametrize("name", sorted(states()))
def test_state_round_trips_through_its_coder(name):
    coder, state = states()[name]
    encoded = coder.encode(state)
    assert encoded[0] == state_coder.VERSION
    assert coder.decode(encoded) == state


@pytest.mark.parametrize("version, name", [(v, name) for v in (2, 3) for name in sorted(states())]
                         + [(1, "cluster member"), (1, "record")])
def test_state_written_by_an_earlier_or_this_release_decodes(version, name):
    # A savepoint taken by that release restores in this one.
    coder, state = states()[name]
    written = bytes.fromhex(json.loads(WRITTEN_BY[version].read_text())[name])
    assert written[0] == version
    same = HOLDS_A_SKETCH.get(name, lambda value: value)
    assert same(coder.decode(written)) == same(state)


def test_this_release_writes_what_its_fixture_holds():
    # Encodings are deterministic: a change to one must bump the version (and add a fixture).
    written = json.loads(WRITTEN_BY[state_coder.VERSION].read_text())
    assert {name: coder.encode(state).hex() for name, (coder, state) in states().items()} == written


def test_the_record_dictionary_is_the_one_version_3_was_written_with():
    assert zlib.crc32(state_coder._RECORD_DICTIONARY) == RECORD_DICTIONARY_CRC


def test_version_3_packs_ids_and_hashes_and_reads_other_strings_as_they_are():
    coder, sketch = states()["sketch"]
    assert len(coder.encode(sketch)) < len(state_coder._PRIMITIVES.encode(tuple(sketch))) - 40
    odd = sketch._replace(uid="not-hex", event_id="NOT-A-UUID", facts=((1, 2**32 - 1),), names=(7,))
    assert coder.decode(coder.encode(odd)) == odd
    stored = sketch._replace(uid=None)  # as its key stores it
    assert coder.decode(coder.encode(stored)) == stored
    upper = sketch._replace(event_id=sketch.event_id.upper())  # not the canonical form: kept as text
    assert coder.decode(coder.encode(upper)) == upper


def test_bucket_members_keep_the_extreme_times_and_refuse_what_does_not_fit():
    rows = b"".join(pack_member("ab" * 10, time, arrival) for time, arrival in
                    [(-62_135_596_800, -9_223_372_036_855), (253_402_300_799, 9_223_372_036_854), (0, 0)])
    encoded = state_coder.BUCKET_RUN.encode(rows)
    assert len(encoded) == 1 + 3 * 21
    assert state_coder.BUCKET_RUN.decode(encoded) == rows
    with pytest.raises(ValueError, match="out of the range"):
        state_coder.BUCKET_RUN.encode(pack_member("ab" * 10, 1 << 40, 0))


def test_a_long_bucket_run_is_packed_as_its_members_one_by_one():
    # Runs of many members (a compacted bucket) take another path than single members.
    members = [pack_member(f"{i:020x}", 541_000_000 - 7_919 * i, -9_223_372_036_855 + i * 10**11) for i in range(70)]
    one_by_one = b"".join(state_coder.BUCKET_RUN.encode(m)[1:] for m in members)
    encoded = state_coder.BUCKET_RUN.encode(b"".join(members))
    assert encoded[1:] == one_by_one
    assert state_coder.BUCKET_RUN.decode(encoded) == b"".join(members)
    with pytest.raises(ValueError, match="out of the range"):
        state_coder.BUCKET_RUN.encode(b"".join(members[:-1]) + pack_member("ab" * 10, -(1 << 40), 0))


def test_a_decision_keeps_its_cluster_id_only_when_its_story_does_not_give_it():
    coder, member = states()["cluster member"]
    given = ClusterDecision(cluster_id_for(member.emitted.duplicate_of), True, member.emitted.duplicate_of, 0.8123)
    odd = ClusterDecision("c" * 32, True, member.emitted.duplicate_of, 1 / 3)  # not its cluster, nor 4 decimals
    sizes = []
    for decision in (given, odd, ClusterDecision(cluster_id_for(member.event_id))):
        member.emitted = decision
        encoded = coder.encode(member)
        assert coder.decode(encoded) == member
        sizes.append(len(encoded))
    assert sizes[0] < sizes[1] - 16 and sizes[2] < sizes[0]


def test_a_relation_whose_order_does_not_repeat_its_ids_keeps_it():
    coder, member = states()["cluster member"]
    relation = member.incoming[0]
    member.incoming = [type(relation)(relation.kind, relation.earlier_uid, relation.earlier_event_id,
                                      (relation.earlier_order[0], "other", "ids"), relation.later_uid,
                                      relation.similarity)]
    assert coder.decode(coder.encode(member)) == member


def test_state_of_a_release_without_reader_for_it_is_refused_not_misread():
    coder, _ = states()["root flag"]
    with pytest.raises(ValueError, match="version 1"):
        coder.decode(bytes([1]) + coder.encode(RootFlag())[1:])


def test_state_of_an_unknown_version_is_refused_not_misread():
    coder, state = states()["cluster member"]
    newer = bytes([state_coder.VERSION + 1]) + coder.encode(state)[1:]
    with pytest.raises(ValueError, match=f"version {state_coder.VERSION + 1}"):
        coder.decode(newer)


def test_state_never_falls_back_to_pickle():
    coder, member = states()["cluster member"]
    member.answers["x"] = (object(), 1)
    with pytest.raises(TypeError, match="no explicit encoding"):
        coder.encode(member)


def test_record_uid_is_kept_in_the_decoded_record():
    coder, record = states()["record"]
    assert record_uid(coder.decode(coder.encode(record))) == record_uid(record)


def test_a_records_primitives_are_what_asdict_gives_for_every_format_of_the_demo():
    import dataclasses

    from wirestream.schemas import Story
    from wirestream.transforms.io.archive import list_archive_files, read_archive_file
    from wirestream.transforms.normalise import normalise_story
    from wirestream.transforms.parse import parse_record
    from wirestream.transforms.tag import tag_record

    samples = Path(__file__).parents[3] / "samples" / "archive"
    records = [tag_record(normalise_story(item)) for archive in list_archive_files(str(samples))
               for raw in read_archive_file(archive) for item in parse_record(raw) if isinstance(item, Story)]
    formats = {r.format for r in records}
    assert len(formats) >= 4 and any(r.subjects for r in records) and any(r.tags["countries"] for r in records)
    for record in records:
        assert record.primitives() == dataclasses.asdict(record)
        assert state_coder.RECORD.decode(state_coder.RECORD.encode(record)) == record
