"""The Kafka source's restriction and commit progress survive a savepoint: an explicit,
versioned encoding (transforms/state_encoding.py) that later releases keep reading,
and no pickled class names that a moved module would break."""

import json
from pathlib import Path

import pytest

from wirestream.transforms.io.kafka import PartitionProgress, TopicOffsets, TopicOffsetsTracker
from wirestream.transforms.io.kafka.commits import PARTITION_PROGRESS_CODER
from wirestream.transforms.io.kafka.positions import UNBOUNDED
from wirestream.transforms.io.kafka.restriction import TOPIC_OFFSETS_CODER
from wirestream.transforms.io.sinks import Acknowledgement

# Written by version 1 (this release): every later release must decode them.
VERSION_1 = Path(__file__).parent / "data" / "kafka_state_v1.json"


def states():
    """Each value as a run leaves it: a tracker checkpointed mid-read, and the progress of
    a partition with a gap and a half-written multi-item payload."""
    tracker = TopicOffsetsTracker(TopicOffsets({0: (0, UNBOUNDED, 0), 3: (40, 90, 12)}, watch=True,
                                               known=frozenset({0, 3})))
    assert tracker.try_claim(("offset", 0, 0)) and tracker.try_claim(("offset", 3, 40))
    primary, residual = tracker.try_split(0)
    progress = PartitionProgress()
    for ack in (Acknowledgement("t", 0, 10, 10, begins=True), Acknowledgement("t", 0, 10, 12),
                Acknowledgement("t", 0, 14, 15), Acknowledgement("t", 0, 12, 13, item=0, item_count=3),
                Acknowledgement("t", 0, 12, 13, item=2, item_count=3)):
        progress.acknowledge(ack)
    assert progress.committed == 12 and progress.items  # a gap at 13, an item still missing at 12
    return {"primary": (TOPIC_OFFSETS_CODER, primary), "residual": (TOPIC_OFFSETS_CODER, residual),
            "progress": (PARTITION_PROGRESS_CODER, progress),
            "fresh progress": (PARTITION_PROGRESS_CODER, PartitionProgress())}


@pytest.mark.parametrize("name", sorted(states()))
def test_state_round_trips_through_its_coder(name):
    coder, state = states()[name]
    encoded = coder.encode(state)
    assert encoded[0] == coder.version == 1
    assert coder.decode(encoded) == state
    assert b"wirestream" not in encoded and b"TopicOffsets" not in encoded  # no class names


@pytest.mark.parametrize("name", sorted(states()))
def test_state_written_by_version_1_decodes(name):
    coder, state = states()[name]
    written = bytes.fromhex(json.loads(VERSION_1.read_text())[name])
    assert written[0] == 1
    assert coder.decode(written) == state


def test_a_value_of_an_unknown_version_is_refused_by_name():
    encoded = bytearray(TOPIC_OFFSETS_CODER.encode(states()["primary"][1]))
    encoded[0] = 9
    with pytest.raises(ValueError, match="kafka topic offsets state of version 9: this release reads versions"):
        TOPIC_OFFSETS_CODER.decode(bytes(encoded))


def test_anything_without_an_explicit_encoding_fails_rather_than_pickles():
    odd = TopicOffsets({0: (0, 5, object())})
    with pytest.raises(TypeError, match="no explicit encoding"):
        TOPIC_OFFSETS_CODER.encode(odd)
