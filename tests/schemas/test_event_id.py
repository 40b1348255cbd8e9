import random
import uuid

from wirestream.schemas.records import EVENT_NAMESPACE, content_digest, derive_event_id


def test_event_ids_are_the_uuid5_of_their_key():
    rng = random.Random(11)
    for _ in range(5_000):
        story_id = "".join(rng.choice("ab|:é中\x00 1") for _ in range(rng.randint(0, 40)))
        version = rng.choice([None, 0, 3])
        headline, body = "Headline " + story_id, story_id * 3
        key = "|".join(["Reuters", story_id, "" if version is None else str(version),
                        content_digest(headline, body)])
        assert derive_event_id("Reuters", story_id, version, headline, body) == str(
            uuid.uuid5(EVENT_NAMESPACE, key))
    # A fixed id: replays and earlier runs must keep upserting the same record.
    assert derive_event_id("Reuters", "reuters21578:1", None, "H", "B") == str(uuid.uuid5(
        EVENT_NAMESPACE, "Reuters|reuters21578:1||" + content_digest("H", "B")))
