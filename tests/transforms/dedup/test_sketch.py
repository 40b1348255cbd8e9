import hashlib

import numpy as np

from tests.transforms.dedup.stories import STORY, story
from wirestream.transforms.dedup import DedupSettings, cluster_records
from wirestream.transforms.dedup.relate import same_facts
from wirestream.transforms.dedup.sketch import band_keys, sketch_record


def test_figures_may_be_trimmed_or_signed_off_but_not_changed():
    sketch = lambda text: sketch_record(story("s", text), DedupSettings()).facts  # noqa: E731
    full = sketch("Net rose 12 pct to 5.1 mln dlrs. Sales were 40 mln dlrs. The year 1986 was good.")
    trimmed = sketch("Net rose 12 pct to 5.1 mln dlrs. Sales were 40 mln dlrs.")
    signed = sketch("Net rose 12 pct to 5.1 mln dlrs. Sales were 40 mln dlrs. Copyright 1987 Wire.")
    changed = sketch("Net rose 14 pct to 5.1 mln dlrs. Sales were 40 mln dlrs. The year 1986 was good.")
    assert same_facts(full, trimmed) and same_facts(trimmed, signed) and same_facts(full, signed)
    assert not same_facts(full, changed)


def test_a_story_without_words_shares_no_bucket():
    empty = [story(f"e{i}", "", headline="", item=i) for i in range(3)]
    sketches = [sketch_record(r, DedupSettings()) for r in empty]
    assert all(band_keys(s, DedupSettings()) == [band_keys(s, DedupSettings())[-1]] for s in sketches)
    out = cluster_records(empty)
    assert len({r.cluster_id for r in out}) == 3 and not any(r.is_duplicate for r in out)


def test_signatures_and_bucket_keys_are_pinned_across_releases():
    # Sketches restored from a savepoint must match new ones after an upgrade of
    # NumPy or of this code. These are the values of every release so far (the
    # constants were drawn from NumPy before they were written out).
    sketch = sketch_record(story("r1", STORY), DedupSettings())
    signature = np.frombuffer(sketch.signature, dtype="<u4")
    assert signature[:4].tolist() == [30531466, 2866671, 7207506, 32435744]
    assert hashlib.sha256(sketch.signature).hexdigest()[:16] == "47abeed103c9f2c3"
    assert band_keys(sketch, DedupSettings())[:2] == [1538653824, 5205789013]
