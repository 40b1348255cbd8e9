import hashlib

import numpy as np

from tests.transforms.dedup.stories import STORY, story
from wirestream.transforms.dedup import DedupSettings, cluster_records
from wirestream.transforms.dedup.relate import same_facts
from wirestream.transforms.dedup import sketch
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


def _by_regex(text, num_perm=128):
    """What ``_words_sketch`` gives, by the token regex and word codes (its path beyond ASCII)."""
    tokens = sketch._TOKEN.findall(text.lower())
    codes = sketch._WORD_CODES.of(tokens)
    signature, shingles = sketch.minhash(codes & sketch._WORD_HASH_MASK, num_perm)
    return signature, shingles, len(tokens), sketch._facts(tokens, np.flatnonzero(codes >> 32).tolist())


def test_ascii_words_are_tokenised_and_coded_as_the_token_regex_does():
    texts = [
        "", "one", "Two words", "a..b ,c, d: e/f/g 1,234.5 6/8 pct :x x: ..y",
        "U.S. and U.K. rates 7-1/2 pct, 10:30 a.m. http://x.example/a/b.html",
        "seventy-five  TEN tens tenth ten_ ten1 hundred_thousand half-year quarter",
        "snake_case __init__ _ __ 3_000 x" + "9" * 80 + " " + "a" * 80,
        "\tNet\n\nrose 12 pct to 5.1 mln dlrs vs 4.2 mln, up from one billion...",
        STORY, STORY.upper(), "1 2 3 4 5", "x 1", "1 x", "1",
    ]
    for text in texts:
        for num_perm in (128, 16):
            assert sketch._words_sketch(text, num_perm) == _by_regex(text, num_perm), text


def test_text_beyond_ascii_keeps_unicode_words():
    # "Zürich" is one word for the token regex, not "z" and "rich".
    signature, shingles, count, facts = sketch._words_sketch("Banks in Zürich sold 5 mln francs", 128)
    assert count == 7 and (signature, shingles, count, facts) == _by_regex("Banks in Zürich sold 5 mln francs")


def test_repeated_shingles_count_once():
    assert sketch._words_sketch("a b c a b c a b c", 128)[1] == 3
    assert sketch._words_sketch("x y", 128)[1] == 2 and sketch._words_sketch("x x", 128)[1] == 1
    assert sketch._words_sketch("", 128)[1] == 0


def test_numba_is_imported_by_the_first_sketch_not_by_the_command():
    import subprocess
    import sys
    code = ("import sys, wirestream.pipelines.cli\n"
            "from wirestream.transforms.dedup import DedupSettings\n"
            "from wirestream.transforms.dedup.sketch import sketch_record\n"
            "from tests.transforms.dedup.stories import story\n"
            "before = 'numba' in sys.modules\n"
            "first = sketch_record(story('s', 'Net rose 12 pct to 5.1 mln dlrs'), DedupSettings())\n"
            "print(before, 'numba' in sys.modules, first.signature.hex()[:16])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    expected = sketch_record(story("s", "Net rose 12 pct to 5.1 mln dlrs"), DedupSettings()).signature.hex()[:16]
    assert out == ["False", "True", expected]
