"""Dedup figures: pair precision/recall on the labelled evaluation, groups found
in the whole Reuters-21578 corpus, cost per story, state and shuffle size per
story; with --beam, dedup's own cost inside Beam (a run with it minus one without)
and the streaming path against batch on the labelled evaluation arriving out of order.

    .venv/bin/python -m benchmarks.bench_dedup [--beam]
"""

from __future__ import annotations

import argparse
import copy
import glob
import json
import pickle
import random
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime
from itertools import combinations
from typing import Optional

import apache_beam as beam
from apache_beam.coders import FastPrimitivesCoder

from benchmarks.datasets import data_dir
from benchmarks.dedup_data import reuters_records, reuters_rows
from benchmarks.dedup_eval import build
from wirestream.transforms.dedup import DedupSettings, NearDuplicateClusters, cluster_records, record_uid
from wirestream.transforms.dedup.batch import BAND_BATCH
from wirestream.transforms.dedup.buckets import candidate_pairs
from wirestream.transforms.dedup.sketch import band_entries, band_keys, sketch_record
from wirestream.transforms.dedup.streaming_state import BandShardIndex, ClusterMember, StoryRelations
from wirestream.transforms.stage import counter_totals


def pairs_by(items, key) -> set[frozenset]:
    groups = defaultdict(list)
    for i, item in enumerate(items):
        groups[key(item)].append(i)
    return {frozenset(p) for members in groups.values() for p in combinations(members, 2)}


def evaluate(settings: DedupSettings, ev) -> dict:
    records = cluster_records([copy.deepcopy(s.record) for s in ev.stories], settings)
    truth = pairs_by(ev.stories, lambda s: s.group)
    found = pairs_by(records, lambda r: r.cluster_id)
    tp = len(truth & found)
    by_kind = Counter()
    for pair in found - truth:
        by_kind["+".join(sorted(ev.stories[i].edit for i in pair))] += 1
    missed = Counter()
    for pair in truth - found:
        missed[max((ev.stories[i].edit for i in pair), key=len)] += 1
    expected_updates = [(s, r) for s, r in zip(ev.stories, records) if s.expected_update_of]
    return {"precision": tp / len(found) if found else 1.0, "recall": tp / len(truth),
            "true_pairs": len(truth), "found_pairs": len(found), "false_pairs": dict(by_kind),
            "missed_pairs": dict(missed),
            "updates_linked": sum(r.update_of == s.expected_update_of and not r.is_duplicate
                                  for s, r in expected_updates),
            "updates": len(expected_updates),
            "records": records}


def report_quality(ev) -> None:
    print(f"== Labelled evaluation: {len(ev.stories)} stories")
    default = DedupSettings()
    for threshold in (0.7, 0.75, 0.8, 0.85, 0.9):
        s = DedupSettings(threshold=threshold)
        r = evaluate(s, ev)
        mark = "  <- default" if threshold == default.threshold else ""
        print(f"threshold {threshold:.2f}: precision {r['precision']:.4f} recall {r['recall']:.4f} "
              f"(pairs: true {r['true_pairs']}, found {r['found_pairs']}){mark}")
    r = evaluate(default, ev)
    print(f"false pairs by kind: {r['false_pairs']}")
    print(f"missed pairs by edit: {r['missed_pairs']}")
    print(f"updates linked to the right earlier version: {r['updates_linked']}/{r['updates']}")
    shuffled = list(range(len(ev.stories)))
    random.Random(1).shuffle(shuffled)
    again = cluster_records([copy.deepcopy(ev.stories[i].record) for i in shuffled], default)
    same = {r.event_id + r.origin.path: r.cluster_id for r in again} == \
        {r.event_id + r.origin.path: r.cluster_id for r in r["records"]}
    print(f"same clusters after shuffling the input: {same}")


def report_corpus(records) -> None:
    print(f"\n== Whole Reuters-21578 corpus: {len(records)} stories")
    clusters = defaultdict(list)
    for r in records:
        clusters[r.cluster_id].append(r)
    multi = [c for c in clusters.values() if len(c) > 1]
    exact = [c for c in multi if len({" ".join(r.body.split()) for r in c}) == 1]
    dups = sum(r.is_duplicate for r in records)
    print(f"clusters with 2+ stories: {len(multi)} ({sum(map(len, multi))} stories, {dups} marked duplicate); "
          f"sizes {dict(sorted(Counter(map(len, multi)).items()))}")
    print(f"  of which every body identical: {len(exact)} groups; with edits: {len(multi) - len(exact)}")
    bodies = defaultdict(list)
    for r in records:
        bodies[" ".join(r.body.split())].append(r)
    same_body = [g for g in bodies.values() if len(g) > 1]
    kept_apart = [g for g in same_body if len({r.cluster_id for r in g}) > 1]
    print(f"identical-body groups in the corpus: {len(same_body)}; split by dedup: {len(kept_apart)} "
          f"(other company or outside the window)")
    print(f"updates linked (CORRECTED reissues): {sum(r.update_of is not None for r in records)}")
    print("examples of near-duplicates with edits:")
    for c in sorted((c for c in multi if c not in exact), key=lambda c: c[0].story_id)[:4]:
        for r in sorted(c, key=lambda r: r.is_duplicate):
            print(f"  {r.story_id:>6} {r.published_at} sim={r.similarity:.2f} {r.headline[:60]}")
        print()


def report_cost(records, settings: DedupSettings) -> None:
    print("== Cost per story")
    sketch_us = []
    for r in records:
        t = time.perf_counter()
        sketch_record(r, settings)
        sketch_us.append((time.perf_counter() - t) * 1e6)
    copies = [copy.deepcopy(r) for r in records]
    t = time.perf_counter()
    cluster_records(copies, settings)
    total = time.perf_counter() - t
    print(f"sketch (MinHash + figures): median {statistics.median(sketch_us):.1f} us, "
          f"mean {statistics.mean(sketch_us):.1f} us, p95 {sorted(sketch_us)[int(0.95 * len(sketch_us))]:.1f} us")
    print(f"whole in-memory clustering: {total / len(records) * 1e6:.1f} us/story "
          f"({len(records) / total:.0f} stories/s, 1 core)")
    sketches = [sketch_record(r, settings) for r in records]
    per_sketch = statistics.median(len(pickle.dumps(s)) for s in sketches)
    keys = statistics.mean(len(band_keys(s, settings)) for s in sketches)
    index = BandShardIndex()
    for s in sketches[:2000]:
        for key in band_keys(s, settings):
            index.probe(key, s, settings)
    stored = len(pickle.dumps(index)) / 2000
    print(f"streaming state per story: one sketch pickles to {per_sketch:.0f} B; it is held in {keys:.1f} "
          f"band buckets; a band-shard index holding 2,000 stories pickles to {stored / 1024:.1f} KiB per "
          f"story (sketches are shared objects in memory; on the wire each band copy is sent)")
    coder = FastPrimitivesCoder()
    entries = [packed for i in range(0, len(sketches), BAND_BATCH)
               for packed in band_entries(sketches[i:i + BAND_BATCH], settings, settings.band_partitions)]
    shuffled = sum(len(coder.encode(e)) for e in entries) / len(sketches)
    pairs = set(candidate_pairs((packed for _, packed in entries), settings).pairs)
    candidates = len({uid for pair in pairs for uid in pair})
    print(f"batch shuffle by bucket: {shuffled:.0f} B per story (keys and uids packed per "
          f"{BAND_BATCH:,} stories); {len(pairs):,} candidate pairs, so {candidates / len(sketches):.1%} "
          f"of the sketches move on to be compared")


def _beam_run(settings: Optional[DedupSettings], max_newid: int) -> tuple[float, float]:
    """(wall s, CPU s) of reading the Reuters jsonl into records inside Beam, then
    clustering them with ``settings`` (None: no dedup, the cost of the source)."""
    path = str(data_dir() / "reuters21578" / "reuters21578.jsonl.gz")
    started, cpu = time.perf_counter(), time.process_time()
    with beam.Pipeline(runner="FnApiRunner") as p:
        records = (p | beam.io.ReadFromText(path) | beam.Map(json.loads)
                   | beam.Filter(lambda row: row["newid"] <= max_newid)
                   | beam.FlatMap(lambda row: reuters_records([row])))
        if settings is not None:
            records, _ = records | NearDuplicateClusters(settings)
        _ = records | beam.combiners.Count.Globally()
    return time.perf_counter() - started, time.process_time() - cpu


def report_beam() -> None:
    print("\n== Beam (FnApiRunner, one process): dedup's own cost = run with dedup - run without")
    for streaming, max_newid in ((False, 10**9), (True, 5000)):
        stories = len([r for r in reuters_rows() if r["newid"] <= max_newid])
        base_wall, base_cpu = _beam_run(None, max_newid)
        wall, cpu = _beam_run(DedupSettings(streaming=streaming), max_newid)
        print(f"{'streaming' if streaming else 'batch'} path, {stories:,} stories: with dedup {wall:.1f} s "
              f"({stories / wall:,.0f} stories/s), source alone {base_wall:.1f} s; dedup costs "
              f"{(wall - base_wall) / stories * 1e6:.0f} us/story wall, "
              f"{(cpu - base_cpu) / stories * 1e6:.0f} us/story CPU")


def cluster_fields(record) -> tuple:
    return record.cluster_id, record.is_duplicate, record.duplicate_of, record.update_of


def batch_clusters(records, settings: DedupSettings = DedupSettings()) -> dict[str, tuple]:
    """Cluster fields by story uid, from the in-memory clustering (records untouched)."""
    return {record_uid(r): cluster_fields(r) for r in cluster_records(copy.deepcopy(records), settings)}


def streaming_run(records, settings: DedupSettings) -> tuple[list[tuple], dict[str, int]]:
    """Runs the streaming path over ``records`` in that order (FnApiRunner). Returns
    every record it emitted as (uid, cluster_revision, cluster fields), and the
    run's counters by name."""
    with tempfile.TemporaryDirectory() as tmp:
        p = beam.Pipeline(runner="FnApiRunner")
        clustered, _ = p | beam.Create(records, reshuffle=False) | NearDuplicateClusters(settings)
        _ = (clustered
             | beam.Map(lambda r: json.dumps([record_uid(r), r.cluster_revision, cluster_fields(r)]))
             | beam.io.WriteToText(f"{tmp}/out"))
        result = p.run()
        result.wait_until_finish()
        outputs = []
        for path in sorted(glob.glob(f"{tmp}/out*")):
            with open(path, encoding="utf-8") as f:
                outputs.extend((uid, rev, tuple(fields)) for uid, rev, fields in map(json.loads, f))
    return outputs, counter_totals(result)


def latest_revisions(outputs) -> dict[str, tuple]:
    latest: dict[str, tuple[int, tuple]] = {}
    for uid, revision, fields in outputs:
        if uid not in latest or revision > latest[uid][0]:
            latest[uid] = (revision, fields)
    return {uid: fields for uid, (_, fields) in latest.items()}


def agency_delays(records, hours: float, seed: int = 7) -> list:
    """Wire order with each story delayed by 0..hours: copies often arrive before their original."""
    rng = random.Random(seed)
    return sorted(records, key=lambda r: datetime.fromisoformat(r.published_at).timestamp()
                  + rng.uniform(0, hours * 3600))


def report_streaming(ev) -> None:
    print("\n== Streaming path vs batch on the labelled evaluation, arriving out of order")
    records = [s.record for s in ev.stories]
    batch = batch_clusters(records)
    # The last run lowers the lateness under the delays, to show the limit.
    for hours, lateness in ((0, 7), (6, 7), (12, 7), (48, 7), (48, 1)):
        started = time.perf_counter()
        settings = DedupSettings(streaming=True, allowed_lateness_days=lateness)
        outputs, counters = streaming_run(agency_delays(records, hours), settings)
        latest = latest_revisions(outputs)
        same = sum(latest.get(uid) == fields for uid, fields in batch.items())
        print(f"delays 0-{hours:>2} h, lateness {lateness} d: {same:,}/{len(batch):,} stories end with the "
              f"batch clusters; "
              f"{counters.get('dedup_corrections', 0)} records written again, "
              f"{counters.get('dedup_too_late', 0)} too late; {time.perf_counter() - started:.1f} s")
    held = statistics.median(len(pickle.dumps(r)) for r in records[:500])
    empty = len(pickle.dumps(ClusterMember())) + len(pickle.dumps(StoryRelations()))
    print(f"per-story state, held for the lateness: the record "
          f"({held:.0f} B pickled, median) and its relations and decision ({empty} B with none)")


def burst_records(kind: str, count: int = 2_000) -> list:
    """``count`` Reuters stories of 100-250 words: distinct ones (no two bodies
    alike), or the first of them as a template (the same body, a different last
    line naming the desk), published a second apart."""
    rows, bodies = [], set()
    for row in reuters_rows():
        body = " ".join((row["body"] or "").split())
        if 100 <= len(body.split()) <= 250 and body not in bodies:
            bodies.add(body)
            rows.append(row)
    letters = "abcdefghijklmnopqrstuvwxyz"
    records = []
    for i in range(count):
        base = reuters_records([rows[i] if kind == "distinct" else rows[0]])[0]
        if kind == "templated":
            desk = letters[i % 26] + letters[i // 26 % 26] + letters[i // 676 % 26]
            base.body += f" Filed by the {desk} desk for the evening edition."
        base.story_id, base.source = f"{kind}{i}", f"feed{i}"
        base.published_at = f"1987-03-02T{10 + i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z"
        base.origin = base.origin.with_item(i)
        records.append(base)
    return records


def _burst_run(kind: str, streaming: bool) -> None:
    """One burst run in this process (its peak memory is the process's)."""
    import resource
    records = burst_records(kind)
    started = time.perf_counter()
    with beam.Pipeline(runner="FnApiRunner") as p:
        clustered, _ = (p | beam.Create(records, reshuffle=False)
                        | NearDuplicateClusters(DedupSettings(streaming=streaming)))
        _ = clustered | beam.combiners.Count.Globally()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": time.perf_counter() - started, "peak_mib": peak}))


def report_bursts() -> None:
    import subprocess
    print("\n== Templated burst: 2,000 stories of one template against 2,000 distinct ones "
          "(FnApiRunner, a process per run)")
    for streaming in (False, True):
        figures = {}
        for kind in ("distinct", "templated"):
            out = subprocess.run([sys.executable, "-m", "benchmarks.bench_dedup", "--burst-run", kind]
                                 + (["--streaming"] if streaming else []),
                                 check=True, capture_output=True, text=True).stdout
            figures[kind] = json.loads(out.strip().splitlines()[-1])
        d, t = figures["distinct"], figures["templated"]
        print(f"{'streaming' if streaming else 'batch'}: distinct {d['seconds']:.1f} s, peak {d['peak_mib']:.0f} MiB; "
              f"templated {t['seconds']:.1f} s, peak {t['peak_mib']:.0f} MiB; "
              f"templated/distinct time {t['seconds'] / d['seconds']:.2f}x")


def report_state_bytes(rate_per_day: int = 1_000, probes: int = 200) -> None:
    """Bytes the streaming path writes to state per story, with its own state coders:
    the band-shard index is a ReadModifyWrite value, written whole, so each story
    rewrites every index it is probed into (once per bundle holding it)."""
    from wirestream.transforms.dedup import state_coder
    from wirestream.transforms.dedup.streaming_state import BandShardIndex
    print(f"\n== Streaming state written per story ({rate_per_day:,} stories a day, "
          f"default settings, the state coders)")
    settings = DedupSettings()
    records = reuters_records()
    for days in (1, 14):
        count = days * rate_per_day + probes
        sketches = []
        for i, record in enumerate(records[:count]):
            sketch = sketch_record(record, settings)
            sketches.append(sketch._replace(time=541_000_000 + i * 86_400 // rate_per_day))
        indexes: dict[str, BandShardIndex] = defaultdict(BandShardIndex)
        written = {1: 0, 50: 0}
        touched: set[str] = set()
        for i, sketch in enumerate(sketches):
            keys = {f"{key >> 32}:{key % settings.shards_per_band}": key for key in band_keys(sketch, settings)}
            for shard, key in keys.items():
                indexes[shard].probe(key, sketch, settings)
            if i < count - probes:
                continue
            sizes = {shard: len(state_coder.BAND_SHARD_INDEX.encode(indexes[shard])) for shard in keys}
            written[1] += sum(sizes.values())
            touched.update(keys)
            if (i - (count - probes)) % 50 == 49:  # a bundle ends: each index it touched is written once
                written[50] += sum(len(state_coder.BAND_SHARD_INDEX.encode(indexes[k])) for k in touched)
                touched.clear()
        print(f"{days:>2} day(s) of stories held: {written[1] / probes / 1024:,.0f} KiB written per story "
              f"with bundles of one story, {written[50] / probes / 1024:,.1f} KiB with bundles of 50")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--beam", action="store_true", help="also time the Beam transform")
    parser.add_argument("--burst", action="store_true", help="only the templated-burst figures")
    parser.add_argument("--state", action="store_true", help="only the state-bytes-per-story figures")
    parser.add_argument("--burst-run", choices=("distinct", "templated"), help=argparse.SUPPRESS)
    parser.add_argument("--streaming", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.burst_run:
        return _burst_run(args.burst_run, args.streaming)
    if args.burst:
        return report_bursts()
    if args.state:
        return report_state_bytes()
    ev = build()
    report_quality(ev)
    records = cluster_records(reuters_records(), DedupSettings())
    report_corpus(records)
    report_cost(records, DedupSettings())
    if args.beam:
        report_beam()
        report_streaming(ev)


if __name__ == "__main__":
    main(sys.argv[1:])
