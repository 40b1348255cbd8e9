"""Streaming state survives a savepoint: an explicit, versioned encoding that a
later release must keep reading."""

import json
from pathlib import Path

import pytest

from tests.transforms.dedup.stories import OTHER_STORY, STORY, story
from wirestream.transforms.dedup import DedupSettings
from wirestream.transforms.dedup import state_coder
from wirestream.transforms.dedup.decide import ClusterDecision
from wirestream.transforms.dedup.sketch import band_keys, record_uid, sketch_record
from wirestream.transforms.dedup.streaming_state import BandShardIndex, ClusterMember, RootRegistry, StoryRelations

# Written by state version 1 (this release): every later release must decode them.
VERSION_1 = Path(__file__).parent / "data" / "state_v1.json"


def states():
    """One of each state, as a short run leaves them: a copy arrived before its original."""
    settings = DedupSettings()
    original = story("r1", STORY)
    copy_ = story("c1", STORY + " Reuter", "1987-03-02T11:00:00Z", "Fed adds reserves", source="courier")
    other = story("x1", OTHER_STORY, "1987-03-02T10:30:00Z", "JAPAN SURPLUS NARROWS")
    sketches = [sketch_record(r, settings) for r in (copy_, other, original)]
    index = BandShardIndex()
    answers = [index.probe(band_keys(s, settings)[0], s, settings) for s in sketches]
    late = answers[2].corrections[0]
    relations = StoryRelations(expected=33, answered=33, time=sketches[0].time,
                               incoming={late.earlier_uid: late}, asked={late.earlier_uid}, root=False, sent=1)
    registry = RootRegistry()
    registry.register(sketches[2].uid, True, sketches[2].time, 0, settings)
    registry.ask(sketches[0].uid, sketches[2].uid, sketches[2].time, settings)
    member = ClusterMember(event_id=copy_.event_id, seq=1, incoming=[late],
                           answers={late.earlier_uid: (True, 0)},
                           emitted=ClusterDecision("c" * 32, True, original.event_id, late.similarity),
                           revision=1)
    original.quality = ["published_at: not given by the source; ingest time used"]
    return {"band shard index": (state_coder.BAND_SHARD_INDEX, index),
            "story relations": (state_coder.STORY_RELATIONS, relations),
            "root registry": (state_coder.ROOT_REGISTRY, registry),
            "cluster member": (state_coder.CLUSTER_MEMBER, member),
            "record": (state_coder.RECORD, original)}


@pytest.mark.parametrize("name", sorted(states()))
def test_state_round_trips_through_its_coder(name):
    coder, state = states()[name]
    encoded = coder.encode(state)
    assert encoded[0] == state_coder.VERSION
    assert coder.decode(encoded) == state


@pytest.mark.parametrize("name", sorted(states()))
def test_state_written_by_version_1_decodes(name):
    coder, state = states()[name]
    written = bytes.fromhex(json.loads(VERSION_1.read_text())[name])
    assert written[0] == 1
    assert coder.decode(written) == state


def test_state_of_an_unknown_version_is_refused_not_misread():
    coder, state = states()["cluster member"]
    newer = bytes([state_coder.VERSION + 1]) + coder.encode(state)[1:]
    with pytest.raises(ValueError, match="version 2"):
        coder.decode(newer)


def test_state_never_falls_back_to_pickle():
    coder, member = states()["cluster member"]
    member.answers["x"] = (object(), 1)
    with pytest.raises(TypeError, match="no explicit encoding"):
        coder.encode(member)


def test_record_uid_is_kept_in_the_decoded_record():
    coder, record = states()["record"]
    assert record_uid(coder.decode(coder.encode(record))) == record_uid(record)
