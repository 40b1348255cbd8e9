import copy
import gzip
import hashlib
import json
import random
from datetime import datetime, timedelta

import apache_beam as beam
import numpy as np
from apache_beam.testing.util import assert_that, equal_to

from benchmarks.bench_dedup import (agency_delays, batch_clusters, cluster_fields, latest_revisions,
                                    streaming_run)
from schemas import EventRecord, Origin, derive_event_id
from transforms.dedup import (CLOCK_QUORUM, BandShardIndex, DedupSettings, NearDuplicateClusters, RootRegistry,
                              band_entries, band_keys, candidate_pairs, cluster_records, compared_members, record_uid,
                              same_facts, sketch_record)

STORY = (
    "The Federal Reserve entered the government securities market to arrange 1.5 billion dlrs of "
    "customer repurchase agreements, a Fed spokesman said. Dealers said federal funds were trading "
    "at 6-1/8 pct when the Fed began its temporary and indirect supply of reserves to the banking "
    "system. Economists said the move was meant to offset a seasonal drain of reserves after the "
    "holiday weekend and did not signal any change in monetary policy.\n\n"
    "The Fed has added reserves in this way on several occasions this month, dealers said, as "
    "the Treasury balance at the central bank swelled with tax receipts.")
OTHER_STORY = (
    "Japan's trade surplus with the United States narrowed slightly in February, the Finance "
    "Ministry said, but officials warned that the yen's rise had yet to curb exports of cars and "
    "electronic goods. The ministry said exports fell while imports of oil and raw materials rose, "
    "and it expected the surplus to stay large for the rest of the fiscal year despite talks "
    "between the two governments on opening Japanese markets.")


def story(story_id, body, published="1987-03-02T10:00:00Z", headline="FED ADDS RESERVES",
          source="reuters", version=None, item=0):
    return EventRecord(
        event_id=derive_event_id(source, story_id, version, headline, body), story_id=story_id,
        version=version, source=source, headline=headline, body=body, url=None, section=None,
        related_headlines=[], published_at=published, published_raw=None, updated_at=None,
        language="en", language_confidence=1.0, language_declared=None, dates_mentioned=[],
        origin=Origin(kind="file", ingested_at="2024-01-01T00:00:00Z", path="wire.jsonl", item=item),
        format="json")


def copies():
    """An original, three republished copies with light edits, and an unrelated story."""
    paragraphs = STORY.split("\n\n")
    return [
        story("r1", STORY, "1987-03-02T10:00:00Z"),
        story("c1", STORY + " Reuter", "1987-03-02T11:00:00Z", "Fed adds reserves via repurchases",
              source="courier"),
        story("c2", paragraphs[0], "1987-03-02T12:00:00Z", "FED ADDS RESERVES - DEALERS", source="desk"),
        story("c3", STORY.replace("indirect", "indirect").replace("Economists", "Economits"),
              "1987-03-03T09:00:00Z", source="wire"),
        story("x1", OTHER_STORY, "1987-03-02T10:30:00Z", "JAPAN SURPLUS NARROWS"),
    ]


def decisions(records):
    return {(r.story_id, r.version): cluster_fields(r) for r in records}


def test_light_edits_cluster_with_the_earliest_report():
    out = {r.story_id: r for r in cluster_records(copies())}
    original = out["r1"]
    assert not original.is_duplicate and original.duplicate_of is None
    for sid in ("c1", "c2", "c3"):
        assert out[sid].cluster_id == original.cluster_id
        assert out[sid].is_duplicate and out[sid].duplicate_of == original.event_id
        assert 0.8 <= out[sid].similarity <= 1.0
    assert out["x1"].cluster_id != original.cluster_id and not out["x1"].is_duplicate


def test_every_record_comes_out_once_with_exactly_one_original_per_cluster():
    again = copies()[0]
    again.origin = Origin(kind="file", ingested_at="2024-01-02T00:00:00Z", path="replay.jsonl", item=0)
    records = copies() + [again]  # the same story read again from another file
    out = cluster_records(records)
    assert len(out) == len(records)
    clusters = {}
    for r in out:
        clusters.setdefault(r.cluster_id, []).append(r)
    for members in clusters.values():
        assert sum(not r.is_duplicate for r in members) == 1


def test_templated_stories_with_other_figures_stay_apart():
    monday = story("f1", STORY, "1987-03-02T10:00:00Z")
    other_day = story("f2", STORY.replace("1.5 billion", "2.0 billion").replace("6-1/8", "6-1/4"),
                      "1987-03-09T10:00:00Z")
    out = cluster_records([monday, other_day], DedupSettings(window_days=10))
    assert out[0].cluster_id != out[1].cluster_id and not out[1].is_duplicate


def test_short_bodies_under_other_companies_stay_apart():
    body = "Qtly div 20 cts vs 20 cts previously Pay April 15 Record March 23 Reuter"
    quaker = story("d1", body, headline="QUAKER OATS CO <OAT> REGULAR DIVIDEND")
    bank = story("d2", body, "1987-03-04T10:00:00Z", headline="UNIBANCORP INC <UBCP> REGULAR DIVIDEND SET")
    same = story("d3", body, "1987-03-03T10:00:00Z", headline="QUAKER OATS <OAT> SETS DIVIDEND")
    out = {r.story_id: r for r in cluster_records([quaker, bank, same])}
    assert out["d2"].cluster_id != out["d1"].cluster_id
    assert out["d3"].duplicate_of == out["d1"].event_id


def test_figures_may_be_trimmed_or_signed_off_but_not_changed():
    sketch = lambda text: sketch_record(story("s", text), DedupSettings()).facts  # noqa: E731
    full = sketch("Net rose 12 pct to 5.1 mln dlrs. Sales were 40 mln dlrs. The year 1986 was good.")
    trimmed = sketch("Net rose 12 pct to 5.1 mln dlrs. Sales were 40 mln dlrs.")
    signed = sketch("Net rose 12 pct to 5.1 mln dlrs. Sales were 40 mln dlrs. Copyright 1987 Wire.")
    changed = sketch("Net rose 14 pct to 5.1 mln dlrs. Sales were 40 mln dlrs. The year 1986 was good.")
    assert same_facts(full, trimmed) and same_facts(trimmed, signed) and same_facts(full, signed)
    assert not same_facts(full, changed)


def test_window_limits_clusters():
    inside = story("w1", STORY, "1987-03-08T09:00:00Z", source="late")
    outside = story("w2", STORY, "1987-03-10T10:00:01Z", source="archive")
    out = {r.story_id: r for r in cluster_records([story("r1", STORY), inside, outside])}
    assert out["w1"].is_duplicate
    assert not out["w2"].is_duplicate and out["w2"].cluster_id != out["r1"].cluster_id


def test_version_and_correction_are_updates_not_duplicates():
    v1 = story("n1", STORY, version=1)
    v2 = story("n1", STORY.replace("Economists", "Analysts"), "1987-03-02T11:00:00Z", version=2)
    corrected = story("k9", STORY.replace("1.5 billion", "1.8 billion"), "1987-03-02T12:00:00Z",
                      headline="CORRECTED - FED ADDS RESERVES")
    out = {(r.story_id, r.version): r for r in cluster_records([corrected, v2, v1])}
    first, second, fix = out[("n1", 1)], out[("n1", 2)], out[("k9", None)]
    assert second.update_of == first.event_id and not second.is_duplicate
    assert fix.update_of == first.event_id and not fix.is_duplicate
    assert len({first.cluster_id, second.cluster_id, fix.cluster_id}) == 3


def test_same_clusters_whatever_the_arrival_order():
    expected = decisions(cluster_records(copies()))
    for seed in range(5):
        shuffled = copies()
        random.Random(seed).shuffle(shuffled)
        assert decisions(cluster_records(shuffled)) == expected


def test_headline_only_briefs_are_compared_by_headline():
    # Reuters sends ~1,800 title-only briefs: sketching their empty bodies put
    # them all in one bucket of every band (1.6M pairs compared 32 times).
    words = (STORY + " " + OTHER_STORY).split()
    briefs = [story(f"b{i}", "", f"1987-03-{2 + i % 5:02d}T10:00:00Z",
                    " ".join(words[6 * i:6 * i + 6]).upper(), item=i) for i in range(len(words) // 6)]
    resent = story("b0-again", "", "1987-03-02T10:05:00Z", briefs[0].headline, source="desk")
    sketches = [sketch_record(r, DedupSettings()) for r in briefs + [resent]]
    pairs = set(candidate_pairs((packed for _, packed in band_entries(sketches, DedupSettings())),
                                DedupSettings()).pairs)
    assert tuple(sorted((sketches[0].uid, sketches[-1].uid))) in pairs
    assert len(pairs) < 0.1 * len(sketches) * (len(sketches) - 1) / 2  # was every pair
    out = {r.story_id: r for r in cluster_records(briefs + [resent])}
    assert out["b0-again"].duplicate_of == out["b0"].event_id
    assert sum(r.is_duplicate for r in out.values()) == 1


def test_a_story_without_words_shares_no_bucket():
    empty = [story(f"e{i}", "", headline="", item=i) for i in range(3)]
    sketches = [sketch_record(r, DedupSettings()) for r in empty]
    assert all(band_keys(s, DedupSettings()) == [band_keys(s, DedupSettings())[-1]] for s in sketches)
    out = cluster_records(empty)
    assert len({r.cluster_id for r in out}) == 3 and not any(r.is_duplicate for r in out)


def _pairs_in_batches(sketches, settings, batch, partitions):
    """Candidate pairs found as the Beam batch path finds them: band entries packed
    per batch of stories, grouped by partition, arriving in any order."""
    by_partition = {}
    for i in range(0, len(sketches), batch):
        for partition, packed in band_entries(sketches[i:i + batch], settings, partitions):
            by_partition.setdefault(partition, []).append(packed)
    pairs = set()
    for group in by_partition.values():
        random.Random(batch).shuffle(group)
        pairs.update(candidate_pairs(group, settings).pairs)
    return pairs


def test_candidate_pairs_do_not_depend_on_batches_or_partitions():
    settings = DedupSettings()
    records = _mixed_records()
    sketches = [sketch_record(r, settings) for r in records]
    uid = {(r.story_id, r.version): s.uid for r, s in zip(records, sketches)}
    expected = set(candidate_pairs((p for _, p in band_entries(sketches, settings)), settings).pairs)
    for batch, partitions in ((1, 7), (2, 3), (5, 16)):
        assert _pairs_in_batches(sketches, settings, batch, partitions) == expected
    assert tuple(sorted((uid[("r1", None)], uid[("c1", None)]))) in expected
    assert tuple(sorted((uid[("n1", 1)], uid[("n1", 2)]))) in expected  # versions meet by story key
    assert tuple(sorted((uid[("r1", None)], uid[("x1", None)]))) not in expected  # unrelated texts


def test_candidate_pairs_stay_inside_the_window():
    early = sketch_record(story("w0", STORY, "1987-03-01T00:00:00Z"), DedupSettings())
    late = sketch_record(story("w9", STORY, "1987-03-11T00:00:00Z", source="archive"), DedupSettings())
    for days, expected in ((7, set()), (11, {tuple(sorted((early.uid, late.uid)))})):
        settings = DedupSettings(window_days=days)
        entries = (packed for _, packed in band_entries([late, early], settings))
        assert set(candidate_pairs(entries, settings).pairs) == expected


def _others(published, settings, count=CLOCK_QUORUM):
    """Unrelated stories published at one time: enough of them move a key's clock there."""
    return [sketch_record(story(f"other{published}{i}", OTHER_STORY, published, source=f"o{i}"), settings)
            for i in range(count)]


def test_band_shard_index_expires_by_event_time_alone():
    settings = DedupSettings(window_days=7, allowed_lateness_days=1)
    index = BandShardIndex()
    old = sketch_record(story("o", STORY, "1987-03-01T00:00:00Z"), settings)
    bucket = band_keys(old, settings)[0]
    index.probe(bucket, old, settings)
    copy_ = sketch_record(story("c", STORY + " Reuter", "1987-03-05T00:00:00Z", source="b"), settings)
    assert [r.earlier_uid for r in index.probe(bucket, copy_, settings).found] == [old.uid]
    for later in _others("1987-03-09T01:00:00Z", settings):  # 8 days and 1 hour after the first
        index.probe(bucket + 1, later, settings)
    assert len(index) == 1 + CLOCK_QUORUM and old.uid not in {s.uid for b in index.buckets.values() for s in b}


def test_one_story_far_ahead_expires_nothing_and_makes_nobody_late():
    settings = DedupSettings(allowed_lateness_days=1)
    index = BandShardIndex()
    copy_ = sketch_record(story("c", STORY + " Reuter", "1987-03-02T12:00:00Z", source="b"), settings)
    bucket = band_keys(copy_, settings)[0]
    index.probe(bucket, copy_, settings)
    for other in _others("1987-03-02T12:00:00Z", settings, CLOCK_QUORUM - 1):
        index.probe(bucket + 1, other, settings)
    # A replayed story whose date fell back to the ingest time, 37 years on.
    ahead = sketch_record(story("now", OTHER_STORY, "2024-01-01T00:00:00Z", source="replay"), settings)
    assert index.probe(bucket + 2, ahead, settings).released == []
    original = sketch_record(story("r1", STORY), settings)
    answer = index.probe(bucket, original, settings)
    assert answer.too_late == [] and [r.later_uid for r in answer.corrections] == [copy_.uid]
    assert copy_.uid in {s.uid for s in index.buckets[bucket]}


def test_band_shard_index_sends_a_late_earlier_story_to_the_copy_decided_without_it():
    settings = DedupSettings()
    index = BandShardIndex()
    copy_ = sketch_record(story("c", STORY + " Reuter", "1987-03-02T12:00:00Z", source="b"), settings)
    original = sketch_record(story("r1", STORY), settings)
    bucket = band_keys(original, settings)[0]
    index.probe(bucket, copy_, settings)
    answer = index.probe(bucket, original, settings)
    assert answer.found == [] and answer.too_late == []
    assert [(r.earlier_uid, r.later_uid) for r in answer.corrections] == [(original.uid, copy_.uid)]


def test_a_story_beyond_the_lateness_corrects_nothing_and_is_counted():
    settings = DedupSettings(allowed_lateness_days=1)
    index = BandShardIndex()
    copy_ = sketch_record(story("c", STORY + " Reuter", "1987-03-04T12:00:00Z", source="b"), settings)
    original = sketch_record(story("r1", STORY, "1987-03-02T10:00:00Z"), settings)  # 2 days behind
    bucket = band_keys(original, settings)[0]
    index.probe(bucket, copy_, settings)
    for other in _others("1987-03-04T12:00:00Z", settings, CLOCK_QUORUM - 1):
        index.probe(bucket + 1, other, settings)
    answer = index.probe(bucket, original, settings)
    assert answer.corrections == [] and answer.too_late == [copy_.uid]


def test_band_shard_index_releases_a_story_once_the_lateness_has_passed():
    settings = DedupSettings(allowed_lateness_days=1)
    index = BandShardIndex()
    first = sketch_record(story("a", STORY, "1987-03-02T10:00:00Z"), settings)
    assert index.probe(1, first, settings).released == []
    for day_later in _others("1987-03-03T09:00:00Z", settings):
        assert index.probe(2, day_later, settings).released == []  # 23 hours: still held
    more = _others("1987-03-03T11:00:00Z", settings)
    released = [uid for other in more for uid in index.probe(3, other, settings).released]
    assert released == [first.uid]


def test_root_registry_answers_askers_before_and_after_registration_and_again_on_a_flip():
    settings = DedupSettings()
    registry = RootRegistry()
    assert registry.ask("early", "p", 0, settings) is None
    assert registry.register("p", True, 0, 0, settings) == [("early", ("p", True, 0))]
    assert registry.ask("late", "p", 0, settings) == ("late", ("p", True, 0))
    assert registry.register("p", True, 0, 1, settings) == []  # more relations, same flag: nobody told
    flipped = registry.register("p", False, 0, 2, settings)
    assert sorted(flipped) == [("early", ("p", False, 2)), ("late", ("p", False, 2))]
    assert registry.register("p", True, 0, 1, settings) == []  # an overtaken older flag is ignored
    assert registry.roots["p"][:1] == (False,)


def test_root_registry_keeps_a_question_about_a_story_not_registered_yet_through_a_sweep():
    settings = DedupSettings(window_days=7, allowed_lateness_days=1)
    registry = RootRegistry()
    assert registry.register("old", True, 0, 0, settings) == []
    assert registry.ask("asker", "pending", 9 * 86_400, settings) is None
    for i in range(CLOCK_QUORUM):  # 9 days on: a sweep forgets "old"
        registry.register(f"other{i}", True, 9 * 86_400, 0, settings)
    assert "old" not in registry.roots
    assert registry.register("pending", False, 9 * 86_400, 1, settings) == [("asker", ("pending", False, 1))]
    # A question about a story forgotten already is answered at once, not left waiting.
    assert registry.ask("asker", "old", 0, settings) == ("asker", ("old", True, 0))


def _run_beam(records, settings, reshuffle):
    expected = sorted(decisions(cluster_records(copy.deepcopy(records), settings)).items())
    with beam.Pipeline(runner="FnApiRunner") as p:
        out = (p | beam.Create(records, reshuffle=reshuffle)
               | NearDuplicateClusters(settings)
               | beam.Map(lambda r: ((r.story_id, r.version), cluster_fields(r))))
        assert_that(out, equal_to(expected))


def _mixed_records():
    records = copies() + [story("n1", STORY, "1987-03-02T09:00:00Z", version=1, item=7),
                          story("n1", OTHER_STORY, "1987-03-02T13:00:00Z", version=2, item=8)]
    random.Random(3).shuffle(records)
    return records


def test_batch_transform_matches_the_plain_functions_in_any_order():
    _run_beam(_mixed_records(), DedupSettings(), reshuffle=True)


def test_batch_transform_keeps_a_record_given_twice():
    records = copies() + [copies()[1]]  # the same record, same origin: one sketch sent twice
    with beam.Pipeline(runner="FnApiRunner") as p:
        out = (p | beam.Create(records) | NearDuplicateClusters()
               | beam.Map(lambda r: (r.story_id, r.is_duplicate)))
        assert_that(out, equal_to([("r1", False), ("c1", True), ("c1", True), ("c2", True), ("c3", True),
                                   ("x1", False)]))


def test_streaming_transform_in_publication_order_matches_batch_without_corrections():
    # Small shard counts so that stories share keys as they would under load.
    in_publication_order = sorted(_mixed_records(), key=lambda r: r.published_at)
    _run_beam(in_publication_order, DedupSettings(streaming=True, shards_per_band=2, registry_shards=2),
              reshuffle=False)


def _chain_records():
    """Copies, a copy of a copy and versions. b1 extends r1 by a paragraph; o1 is
    the end of b1, so it copies b1 but not r1: in batch it leads its own cluster
    (b1 is a duplicate). When r1 arrives last, b1 is first decided as a root and
    o1 as its duplicate, and both must be corrected."""
    first, second = STORY.split("\n\n")
    return copies() + [
        story("b1", f"{STORY}\n\n{OTHER_STORY}", "1987-03-02T10:15:00Z", source="blog"),
        story("o1", f"{second}\n\n{OTHER_STORY}", "1987-03-02T10:20:00Z", source="other"),
        story("n1", STORY, "1987-03-05T09:00:00Z", version=1, item=7),
        story("n1", OTHER_STORY, "1987-03-05T13:00:00Z", version=2, item=8)]


def _check_streaming(records, settings, expected, expected_counts) -> int:
    """Runs the streaming path over ``records`` in that order; checks that every story
    is emitted once at revision 0, that its latest revision is ``expected``, and that
    the run's counts (revision-0 records, moved by the dedup stage when a correction
    flips one) are ``expected_counts``. Returns how many records were written again."""
    outputs, counters = streaming_run(records, settings)
    first = [fields for _, revision, fields in outputs if revision == 0]
    assert len(first) == len(records)
    latest = latest_revisions(outputs)
    differ = {uid: (latest.get(uid), expected[uid]) for uid in expected if latest.get(uid) != expected[uid]}
    assert not differ and latest.keys() == expected.keys()
    counts = (sum(not f[1] for f in first) + counters.get("unique", 0),
              sum(f[1] for f in first) + counters.get("duplicates", 0))
    assert counts == expected_counts
    return counters.get("dedup_corrections", 0)


def _batch_outcome(records, settings):
    """Batch cluster fields by story uid, and the (unique, duplicate) counts."""
    decided = batch_clusters(records, settings)
    duplicates = sum(fields[1] for fields in decided.values())
    return decided, (len(decided) - duplicates, duplicates)


def test_streaming_latest_revisions_equal_batch_in_any_arrival_order():
    records = _chain_records()
    # The stories span 3 days: any order of them is within a 4-day lateness.
    settings = DedupSettings(streaming=True, shards_per_band=2, registry_shards=2, allowed_lateness_days=4)
    expected, expected_counts = _batch_outcome(records, settings)
    by_time = sorted(records, key=lambda r: r.published_at)
    orders = [by_time[::-1]] + [random.Random(seed).sample(records, len(records)) for seed in range(3)]
    corrections = [_check_streaming(order, settings, expected, expected_counts) for order in orders]
    assert corrections[0] > 0  # in reverse order every copy is first decided without its original
    orphan = next(r for r in records if r.story_id == "o1")
    assert expected[record_uid(orphan)][1:3] == (False, None)  # the orphan path is the one exercised


def _reuters(shared_data, newids):
    from transforms.normalise.text import clean_text
    rows = {}
    with gzip.open(shared_data / "reuters21578" / "reuters21578.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["newid"] in newids:
                rows[row["newid"]] = row
    day, clock = {"2-MAR": "02", "9-MAR": "09", "11-MAR": "11", "13-MAR": "13"}, {}
    for newid, row in rows.items():
        stamp = row["date_raw"].split()
        clock[newid] = f"1987-03-{day[stamp[0][:-5]]}T{stamp[1][:8]}Z"
    return [story(str(n), clean_text(rows[n]["body"]), clock[n], clean_text(rows[n]["title"]), item=n)
            for n in sorted(rows)]


def test_real_reuters_hard_negatives(shared_data):
    # 3774/5085: identical dividend bodies, Quaker Oats vs Unibancorp.
    records = _reuters(shared_data, {3774, 5085})
    assert len(records) == 2 and records[0].body == records[1].body
    out = cluster_records(records)
    assert out[0].cluster_id != out[1].cluster_id


def test_streaming_equals_batch_on_the_labelled_evaluation_with_agency_delays(shared_data):
    # The 2,020 stories of the labelled evaluation (copies, re-sends, hard negatives,
    # updates) arrive in wire order with each story delayed by 0-12 hours, so that
    # copies often arrive before the story they copy; default settings.
    from benchmarks.dedup_eval import build
    records = [s.record for s in build().stories]
    arrival = agency_delays(records, hours=12)
    settings = DedupSettings(streaming=True)
    expected, expected_counts = _batch_outcome(records, settings)
    assert _check_streaming(arrival, settings, expected, expected_counts) > 0


def test_streaming_equals_batch_on_the_labelled_evaluation_in_a_random_order(shared_data):
    # Any order at all: 8 months of stories shuffled, with a lateness covering them.
    from benchmarks.dedup_eval import build
    records = [s.record for s in build().stories]
    arrival = random.Random(3).sample(records, len(records))
    settings = DedupSettings(streaming=True, allowed_lateness_days=400)
    expected, expected_counts = _batch_outcome(records, settings)
    assert _check_streaming(arrival, settings, expected, expected_counts) > 0


def _templated_burst(count, published="1987-03-02T10:00:00Z"):
    """``count`` stories of one template: the same boilerplate body, a different last line."""
    names = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
    start = datetime.fromisoformat(published.replace("Z", "+00:00"))
    return [story(f"t{i}", f"{STORY} Filed by the {names[i % 10]} {names[i // 10 % 10]} desk.",
                  (start + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"), source=f"feed{i}", item=i)
            for i in range(count)]


BURST_SETTINGS = DedupSettings(compare_earliest=4, compare_latest=4)


def test_a_templated_burst_is_compared_under_the_bucket_cap_and_joins_its_first_story():
    records = _templated_burst(60)
    sketches = [sketch_record(r, BURST_SETTINGS) for r in records]
    found = candidate_pairs((p for _, p in band_entries(sketches, BURST_SETTINGS)), BURST_SETTINGS)
    # Each story meets at most 4 + 4 earlier members in a bucket; the burst shares
    # most buckets, so nearly the same ones in each. Uncapped: every pair.
    assert len(found.pairs) <= 2 * 60 * 8 and found.dropped > 0
    uncapped = DedupSettings(compare_earliest=60, compare_latest=60)
    everything = candidate_pairs((p for _, p in band_entries(sketches, uncapped)), uncapped)
    assert everything.dropped == 0 and len(everything.pairs) == 60 * 59 // 2
    out = cluster_records(records, BURST_SETTINGS)
    first = out[0]
    assert not first.is_duplicate
    assert all(r.duplicate_of == first.event_id for r in out[1:])


def test_the_bucket_cap_keeps_the_earliest_and_the_latest_members_in_the_window():
    settings = DedupSettings(window_days=1, compare_earliest=2, compare_latest=3)
    hour = 3_600
    times = [0, 1 * hour, 2 * hour, 3 * hour, 4 * hour, 5 * hour, 6 * hour, 7 * hour, 30 * hour]
    assert compared_members(times, 7, settings) == ([0, 1, 4, 5, 6], 2)
    assert compared_members(times, 3, settings) == ([0, 1, 2], 0)
    # 30 h: only 6 h (exactly a day before) and 7 h are within the window.
    assert compared_members(times, 8, settings) == ([6, 7], 0)


def test_band_shard_index_applies_the_bucket_cap_in_any_arrival_order():
    records = _templated_burst(40)
    sketches = [sketch_record(r, BURST_SETTINGS) for r in records]
    bucket = band_keys(sketches[0], BURST_SETTINGS)[0]
    for order in (sketches, sketches[::-1], random.Random(4).sample(sketches, len(sketches))):
        index = BandShardIndex()
        relations, made, dropped = set(), 0, 0
        for sketch in order:
            answer = index.probe(bucket, sketch, BURST_SETTINGS)
            made += len(answer.found) + len(answer.corrections)
            relations.update((r.earlier_uid, r.later_uid) for r in answer.found + answer.corrections)
            dropped += answer.dropped
        # Every story met the first one, whatever came first.
        assert {(sketches[0].uid, s.uid) for s in sketches[1:]} <= relations
        if order is sketches:  # in publication order each story meets at most 4 + 4 earlier ones
            assert made <= 40 * 8 and dropped == sum(max(0, i - 8) for i in range(40))


def test_signatures_and_bucket_keys_are_pinned_across_releases():
    # Sketches restored from a savepoint must match new ones after an upgrade of
    # NumPy or of this code: these values may only change with a new state version.
    sketch = sketch_record(story("r1", STORY), DedupSettings())
    signature = np.frombuffer(sketch.signature, dtype="<u4")
    assert signature[:4].tolist() == [68842818, 12102221, 35185209, 40581648]
    assert hashlib.sha256(sketch.signature).hexdigest()[:16] == "edd1de1a6f206b73"
    assert band_keys(sketch, DedupSettings())[:2] == [2960654624, 8339177215]
