"""End-to-end backfill throughput on Reuters-21578, and where the time goes.

    python benchmarks/bench_throughput.py [--repeats 3] [--source GLOB] [--runner FnApiRunner]

1. The full pipeline (parse, dates, language, dedup, tags) over the whole corpus
   into a jsonl: sink, on the local runner, several times: stories/s, wall and
   CPU time, peak memory (median and spread).
2. The same with the heavy stages off (`--parse-only`: read, parse, write): the
   floor set by I/O and the runner, and the ratio full/floor.
3. A per-stage profile: each stage's plain function over the same stories,
   without Beam, so the difference to (1) is the runner's own cost.

Each pipeline run is a fresh process, so its peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.datasets import data_dir  # noqa: E402



def child_run(mode: str, source: str, runner: str) -> None:
    """Runs one pipeline in this process and prints its own measurements as JSON."""
    from pipelines.cli import run
    with tempfile.TemporaryDirectory() as out:
        args = ["--source", source, "--sink", f"jsonl:{out}", "--runner", runner, "--progress", "off"]
        if mode == "floor":
            args.append("--parse-only")
        started, cpu0 = time.perf_counter(), time.process_time()
        summary, _ = run(args)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_kib = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, children.ru_maxrss)
    print(json.dumps({"mode": mode, "read": summary.read, "wall_s": wall,
                      "cpu_s": cpu + children.ru_utime + children.ru_stime,
                      "peak_mib": peak_kib / 1024}))


def measure(mode: str, source: str, runner: str, repeats: int) -> list[dict]:
    results = []
    for _ in range(repeats):
        proc = subprocess.run([sys.executable, __file__, "--child", mode, "--source", source,
                               "--runner", runner], capture_output=True, text=True, cwd=REPO)
        if proc.returncode != 0:
            sys.exit(f"{mode} run failed:\n{proc.stderr[-2000:]}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return results


def describe(name: str, runs: list[dict]) -> float:
    rates = [r["read"] / r["wall_s"] for r in runs]

    def spread(values, fmt):
        return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"
    print(f"{name:<6} stories {runs[0]['read']:,}  stories/s {spread(rates, '{:,.0f}')}  "
          f"wall s {spread([r['wall_s'] for r in runs], '{:.1f}')}  "
          f"CPU s {spread([r['cpu_s'] for r in runs], '{:.1f}')}  "
          f"peak MiB {spread([r['peak_mib'] for r in runs], '{:,.0f}')}")
    return statistics.median(rates)


def stage_profile(source: str) -> None:
    """Median µs per story and total seconds of each stage's plain function."""
    from schemas import Story
    from transforms.dedup import DedupSettings, cluster_records
    from transforms.io.archive import list_archive_files, read_archive_file
    from transforms.normalise import normalise_story
    from transforms.parse import parse_record
    from transforms.tag import tag_record

    timings: dict[str, list[float]] = {s: [] for s in ("read", "parse", "normalise", "tag", "encode")}

    def timed(stage, fn, *args):
        t = time.perf_counter_ns()
        out = fn(*args)
        timings[stage].append((time.perf_counter_ns() - t) / 1000)
        return out

    raws = []
    for archive in list_archive_files(source):
        t = time.perf_counter_ns()
        records = list(read_archive_file(archive))
        per = (time.perf_counter_ns() - t) / 1000 / max(len(records), 1)
        timings["read"] += [per] * len(records)
        raws += records
    records = []
    for raw in raws:
        for item in timed("parse", lambda r: list(parse_record(r)), raw):
            if isinstance(item, Story):
                records.append(timed("normalise", normalise_story, item))
    t = time.perf_counter()
    cluster_records(records, DedupSettings())
    dedup_total = time.perf_counter() - t
    for record in records:
        timed("tag", tag_record, record)
        timed("encode", lambda r: json.dumps(r.to_dict(), ensure_ascii=False), record)
    totals = {stage: sum(v) / 1e6 for stage, v in timings.items()}
    totals["dedup"] = dedup_total
    whole = sum(totals.values())
    print(f"\nper-stage profile, plain functions, one process, {len(records):,} stories:")
    for stage in ("read", "parse", "normalise", "dedup", "tag", "encode"):
        median = (statistics.median(timings[stage]) if stage in timings
                  else dedup_total / len(records) * 1e6)
        label = "mean" if stage == "dedup" else "median"
        print(f"  {stage:<10} {label} {median:>7.0f} µs/story   total {totals[stage]:6.1f} s   "
              f"{totals[stage] / whole:6.1%}")
    print(f"  {'all':<10} {'':>14}              total {whole:6.1f} s   "
          f"-> {len(records) / whole:,.0f} stories/s on one core without Beam")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default=str(data_dir() / "reuters21578" / "original" / "*.sgm"))
    parser.add_argument("--runner", default="FnApiRunner")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--child", choices=("full", "floor"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_run(args.child, args.source, args.runner)
        return
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, runner {args.runner}, "
          f"{args.repeats} runs each; median (min–max)")
    full = describe("full", measure("full", args.source, args.runner, args.repeats))
    floor = describe("floor", measure("floor", args.source, args.runner, args.repeats))
    print(f"full/floor throughput ratio: {full / floor:.2f}")
    if not args.no_profile:
        stage_profile(args.source)


if __name__ == "__main__":
    main()
