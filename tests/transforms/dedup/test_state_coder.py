"""Streaming state survives a savepoint: an explicit, versioned encoding that a
later release must keep reading."""

import json
from pathlib import Path

import pytest

from tests.transforms.dedup.stories import OTHER_STORY, STORY, story
from wirestream.transforms.dedup import DedupSettings
from wirestream.transforms.dedup import state_coder
from wirestream.transforms.dedup.decide import ClusterDecision
from wirestream.transforms.dedup.sketch import record_uid, sketch_record
from wirestream.transforms.dedup.streaming_state import (BucketMembers, ClusterMember, RootFlag, StoredSketch, StoryRelations,
                                              pack_member, relate_with_stored)

# Written by earlier releases: this one must decode them. Version 2 is this release;
# of version 1's states, those whose steps remain (the cluster member, the record).
WRITTEN_BY = {1: Path(__file__).parent / "data" / "state_v1.json",
              2: Path(__file__).parent / "data" / "state_v2.json"}


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
            "stored sketch": (state_coder.STORED_SKETCH, StoredSketch(541_000_002, state_coder.SKETCH.encode(sketches[2]))),
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


@pytest.mark.parametrize("version, name", [(2, name) for name in sorted(states())]
                         + [(1, "cluster member"), (1, "record")])
def test_state_written_by_an_earlier_or_this_release_decodes(version, name):
    # A savepoint taken by that release restores in this one.
    coder, state = states()[name]
    written = bytes.fromhex(json.loads(WRITTEN_BY[version].read_text())[name])
    assert written[0] == version
    assert coder.decode(written) == state


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
