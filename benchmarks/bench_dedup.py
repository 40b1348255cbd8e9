"""Dedup figures: pair precision/recall on the labelled evaluation, groups found
in the whole Reuters-21578 corpus, cost per story, state and shuffle size per
story; with --beam, dedup's own cost inside Beam (a run with it minus one without)
and the streaming path against batch on the labelled evaluation arriving out of order.

    .venv/bin/python -m benchmarks.bench_dedup [--beam] [--burst] [--state] [--keyed-floor]
"""

from __future__ import annotations

import argparse
import copy
import json
import pickle
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime
from itertools import combinations
from typing import Optional

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp
from apache_beam.coders import FastPrimitivesCoder

from benchmarks.datasets import data_dir
from benchmarks.dedup_data import reuters_records, reuters_rows
from benchmarks.dedup_eval import build
from wirestream.transforms.dedup import DedupSettings, NearDuplicateClusters, cluster_records, record_uid
from wirestream.transforms.dedup.batch import BAND_BATCH
from wirestream.transforms.dedup.buckets import candidate_pairs
from wirestream.transforms.dedup.sketch import band_entries, band_keys, sketch_record
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
    from wirestream.transforms.dedup import state_coder
    from wirestream.transforms.dedup.streaming_state import pack_member
    encoded = statistics.median(len(state_coder.SKETCH.encode(s)) for s in sketches)
    member = len(state_coder.BUCKET_RUN.encode(pack_member(sketches[0].uid, sketches[0].time, 0)))
    print(f"streaming state per story: one sketch pickles to {per_sketch:.0f} B and is stored once, "
          f"{encoded:.0f} B with the state coder; it is in {keys:.1f} band buckets, each of which "
          f"stores a {member} B member")
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


class LiveFeed(beam.DoFn, RestrictionProvider):
    """An unbounded source of some records, ``per_poll`` at a time, then a
    checkpoint (as the Kafka reader does): run by the streaming local runner,
    each poll goes through the whole graph before the next is read."""

    def __init__(self, records, per_poll: int, seconds_apart: float = 1.0):
        self._records, self._per_poll, self._seconds_apart = records, per_poll, seconds_apart

    def initial_restriction(self, _):
        return OffsetRange(0, len(self._records))

    def create_tracker(self, restriction):
        return OffsetRestrictionTracker(restriction)

    def restriction_size(self, _, restriction):
        return restriction.size()

    @beam.DoFn.unbounded_per_element()
    def process(self, _, tracker=beam.DoFn.RestrictionParam(),
                watermark=beam.DoFn.WatermarkEstimatorParam(ManualWatermarkEstimator.default_provider())):
        position = tracker.current_restriction().start
        _polled(position)
        while position < len(self._records) and tracker.try_claim(position):
            # Records arrive seconds_apart apart: the watermark follows, as a caught-up Kafka reader's does.
            arrival = Timestamp(seconds=position * self._seconds_apart)
            yield TimestampedValue(self._records[position], arrival)
            watermark.set_watermark(arrival)
            position += 1
            if position % self._per_poll == 0:
                tracker.defer_remainder()
                return


# What the state meter showed when the live feed read its record at each position (the
# runner runs in this process): (position, bytes written by state id, bytes held by state id).
POLLS: list[tuple] = []
_METER: list = []  # the meter of the run in progress, if any


def _polled(position: int) -> None:
    if _METER:
        POLLS.append((position, Counter(_METER[0].written), _METER[0].held()))


def streaming_run(records, settings: DedupSettings, per_poll: Optional[int] = None,
                  seconds_apart: float = 1.0, meter=None) -> tuple[list[tuple], dict[str, int]]:
    """Runs the streaming path over ``records`` in that order on the streaming local
    runner: as a backlog (all of them in one bundle) or, given ``per_poll``, live
    (that many per read of the source). Returns every record it emitted as (uid,
    cluster_revision, cluster fields), and the run's counters by name."""
    from wirestream.pipelines.local_runner import StreamingFnApiRunner
    _EMITTED.clear()
    POLLS.clear()
    _METER[:] = [meter] if meter is not None else []
    p = beam.Pipeline(runner=StreamingFnApiRunner())
    if per_poll is None:
        source = p | beam.Create(records, reshuffle=False)
    else:
        source = p | beam.Create([None]) | beam.ParDo(LiveFeed(records, per_poll, seconds_apart))
    clustered, _ = source | NearDuplicateClusters(settings)
    _ = clustered | beam.Map(_note_emitted)
    result = p.run()
    result.wait_until_finish()
    _METER.clear()
    outputs = list(_EMITTED)
    _EMITTED.clear()
    return outputs, counter_totals(result)


# The local runner runs DoFns in this process: what the run emitted, by a module-level function.
_EMITTED: list[tuple] = []


def _note_emitted(record) -> None:
    _EMITTED.append((record_uid(record), record.cluster_revision, cluster_fields(record)))


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
    print("\n== Streaming path vs batch on the labelled evaluation, arriving out of order "
          "(live, 20 stories per read of the source, and as a backlog)")
    records = [s.record for s in ev.stories]
    batch = batch_clusters(records)
    for hours in (0, 6, 12, 48):
        for per_poll in (20, None):
            started = time.perf_counter()
            settings = DedupSettings(streaming=True)
            outputs, counters = streaming_run(agency_delays(records, hours), settings, per_poll)
            latest = latest_revisions(outputs)
            same = sum(latest.get(uid) == fields for uid, fields in batch.items())
            print(f"delays 0-{hours:>2} h, {'live' if per_poll else 'backlog'}: {same:,}/{len(batch):,} stories "
                  f"end with the batch clusters; {counters.get('dedup_corrections', 0)} records written again, "
                  f"{counters.get('dedup_too_late', 0)} too late; {time.perf_counter() - started:.1f} s")


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
    from wirestream.pipelines.local_runner import StreamingFnApiRunner
    records = burst_records(kind)
    started = time.perf_counter()
    # Streaming runs on the runner of a live run: Beam's FnApiRunner sizes every value
    # it caches by walking its object graph, which with a key per bucket is most of the time.
    with beam.Pipeline(runner=StreamingFnApiRunner() if streaming else "FnApiRunner") as p:
        clustered, _ = (p | beam.Create(records, reshuffle=False)
                        | NearDuplicateClusters(DedupSettings(streaming=streaming)))
        _ = clustered | beam.combiners.Count.Globally()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": time.perf_counter() - started, "peak_mib": peak}))


def report_bursts() -> None:
    import subprocess
    print("\n== Templated burst: 2,000 stories of one template against 2,000 distinct ones "
          "(batch: FnApiRunner; streaming: the streaming local runner; a process per run)")
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


def report_state_bytes(rate_per_day: int = 1_000, probes: int = 200, per_poll: int = 50) -> None:
    """Bytes the streaming path writes to state per story, counted where the SDK
    hands them to the runner's state API (``state_meter``), in a live run of the
    local runner (``per_poll`` stories per read, so per bundle), once with a day of
    stories held and once with 14 days: the figure is the bytes written while the
    last ``probes`` stories went through, per story."""
    from benchmarks.state_meter import metered_state
    from datetime import timezone
    print(f"\n== Streaming state written per story ({rate_per_day:,} stories a day of publication time, "
          f"default settings, {per_poll} stories per bundle; the state API of the local runner)")
    settings = DedupSettings(streaming=True)
    records = reuters_records()
    start = datetime(1987, 3, 1, tzinfo=timezone.utc).timestamp()
    for days in (1, 14):
        count = days * rate_per_day + probes
        feed = []
        for i, record in enumerate(records[:count]):
            record = copy.copy(record)
            published = datetime.fromtimestamp(start + i * 86_400 / rate_per_day, tz=timezone.utc)
            record.published_at = published.strftime("%Y-%m-%dT%H:%M:%SZ")
            feed.append(record)
        started = time.perf_counter()
        with metered_state() as meter:
            streaming_run(feed, settings, per_poll=per_poll, meter=meter)
        mark = next(p for p in POLLS if p[0] >= count - probes)
        last = POLLS[-1]
        written = meter.written - mark[1]
        per_story = sum(written.values()) / probes
        by_state = ", ".join(f"{name} {size / probes:,.0f} B" for name, size in sorted(written.items()))
        held = last[2]
        print(f"{days:>2} day(s) of stories held ({count:,} stories, {time.perf_counter() - started:.0f} s): "
              f"{per_story:,.0f} B written per story ({by_state}); held when the last was read: "
              f"{sum(held.values()) / last[0] / 1024:,.2f} KiB per story read "
              f"({', '.join(f'{k} {v / last[0]:,.0f} B' for k, v in sorted(held.items()))})")


class _KeyedFloor(beam.DoFn):
    """Only the Beam side of ``MatchInBucket`` for one bucket element: its bag read
    and append and its expiry timer, and one message out; no matching at all."""

    MEMBERS = beam.transforms.userstate.BagStateSpec("members", FastPrimitivesCoder())
    EXPIRY = beam.transforms.userstate.TimerSpec("expiry", beam.transforms.timeutil.TimeDomain.WATERMARK)

    def process(self, element, timestamp=beam.DoFn.TimestampParam, members=beam.DoFn.StateParam(MEMBERS),
                expiry=beam.DoFn.TimerParam(EXPIRY)):
        key, story = element
        _ = list(members.read())
        members.add(story)
        expiry.set(timestamp + 14 * 86_400)
        yield story, key

    @beam.transforms.userstate.on_timer(EXPIRY)
    def expire(self, members=beam.DoFn.StateParam(MEMBERS)):
        members.clear()


def _keyed_run(stories: int, buckets: int, keyed: bool, per_poll: int = 50) -> float:
    """CPU seconds of a live run on the streaming local runner: ``stories`` items read
    ``per_poll`` at a time, each sent to ``buckets`` new keys, through ``_KeyedFloor`` or
    (``keyed`` False) the same fan-out through a stateless step."""
    from wirestream.pipelines.local_runner import StreamingFnApiRunner
    cpu = time.process_time()
    p = beam.Pipeline(runner=StreamingFnApiRunner())
    fanned = (p | beam.Create([None]) | beam.ParDo(LiveFeed(list(range(stories)), per_poll))
              | beam.FlatMap(lambda story: [(story * buckets + band, story) for band in range(buckets)]))
    if keyed:
        _ = fanned | beam.ParDo(_KeyedFloor())
    else:
        _ = fanned | beam.MapTuple(lambda key, story: (story, key))
    p.run().wait_until_finish()
    return time.process_time() - cpu


def report_keyed_floor(stories: int = 3_000) -> None:
    """What Beam's own work for the streaming path's bucket elements costs, whatever
    our code does: the ceiling it sets on one core."""
    buckets = DedupSettings().bands + 1  # one element per band bucket and the version bucket
    print(f"\n== Beam's floor for streaming dedup: {buckets} keyed elements per story (a bag read and "
          f"append and a timer each), streaming local runner, {stories:,} stories read 50 at a time")
    _keyed_run(200, buckets, True)  # warm
    plain = min(_keyed_run(stories, buckets, False) for _ in range(2))
    keyed = min(_keyed_run(stories, buckets, True) for _ in range(2))
    per_element = (keyed - plain) / (stories * buckets)
    print(f"stateless fan-out {plain / stories * 1e3:.2f} ms/story; with state and timers "
          f"{keyed / stories * 1e3:.2f} ms/story: {per_element * 1e6:.0f} us per keyed element "
          f"(expiry timers firing at the end included)")
    print(f"ceiling of the bucket step alone on one core: {1 / (keyed / stories):,.0f} stories/s")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--beam", action="store_true", help="also time the Beam transform")
    parser.add_argument("--burst", action="store_true", help="only the templated-burst figures")
    parser.add_argument("--state", action="store_true", help="only the state-bytes-per-story figures")
    parser.add_argument("--keyed-floor", action="store_true", help="only Beam's cost per keyed bucket element")
    parser.add_argument("--burst-run", choices=("distinct", "templated"), help=argparse.SUPPRESS)
    parser.add_argument("--streaming", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.burst_run:
        return _burst_run(args.burst_run, args.streaming)
    if args.burst:
        return report_bursts()
    if args.state:
        return report_state_bytes()
    if args.keyed_floor:
        return report_keyed_floor()
    ev = build()
    report_quality(ev)
    records = cluster_records(reuters_records(), DedupSettings())
    report_corpus(records)
    report_cost(records, DedupSettings())
    if args.beam:
        report_beam()
        report_streaming(ev)


if __name__ == "__main__":
    # Through the module's importable name: DoFns of the runs refer to its globals by it.
    from benchmarks import bench_dedup
    bench_dedup.main(sys.argv[1:])
