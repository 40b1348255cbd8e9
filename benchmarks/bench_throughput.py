"""End-to-end backfill throughput on Reuters-21578, against the floor and a peer.

    python benchmarks/bench_throughput.py [--repeats 3] [--source GLOB] [--runner FnApiRunner]
        [--beam-args "--direct_num_workers 2 --direct_running_mode multi_processing"]
        [--only full,floor,peer,profile]

Prints, from one run:
1. **stories/s end to end**: the `wirestream run` command over the whole corpus
   into a jsonl: sink, wall time from its start to its exit (a fresh process
   each time, so start-up and gazetteer loading count), median of --repeats;
2. **full/floor**: the same command with `--parse-only` (read, parse, write),
   measured the same way, runs of the two alternating, and the ratio of the
   two throughputs: of the medians, and run by run (each full run against the
   floor run after it);
3. **peak memory of all processes together**: the largest sum of the
   proportional set size (PSS) of the command and every process it started
   (forked local workers, SDK workers), sampled every 0.25 s from /proc; PSS
   counts a page that forked workers share once, as the machine holds it. The
   summed RSS (sampled every 50 ms), which counts such a page once per
   process, is printed beside it. The sampler takes about a tenth of a core
   (the kernel walks every page table for PSS), which on two cores slows a
   run that uses both: memory is sampled in one more run of each command, and
   the timed runs are not sampled;
4. **the peer**: the loop a user would write first, on the same stories —
   langdetect.detect, dateparser.parse and a datasketch MinHash LSH, one
   process — and how far the pipeline is ahead of it.
Then a per-stage profile: CPU time of each stage's plain function over the same
stories in one process, without Beam; the gap to (1) is the runner's own cost.

CPU time is reported beside wall time: on a shared machine wall figures need a
quiet machine, CPU figures much less so.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.datasets import data_dir  # noqa: E402

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _pss(pid: int) -> int:
    """Proportional set size: each shared page counted in shares, so the sum
    over processes that share pages (forked workers) is the memory they use."""
    with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
        for line in f:
            if line.startswith(b"Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def _tree_memory(root: int, with_pss: bool = True) -> tuple[int, int]:
    """(summed resident bytes, summed proportional bytes) of `root` and all
    its descendants, now. The RSS sum counts a page shared by forked processes
    once per process; the PSS sum counts it once."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{entry.name}/statm", "rb") as f:
                rss[int(entry.name)] = int(f.read().split()[1]) * _PAGE
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    total_rss = total_pss = 0
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in rss:
            total_rss += rss[pid]
            try:
                total_pss += _pss(pid) if with_pss else 0
            except OSError:
                pass  # ended meanwhile
        todo += children.get(pid, [])
    return total_rss, total_pss


def timed_command(argv: list[str], sample_memory: bool = False) -> dict:
    """Runs a command to its exit: wall seconds, CPU seconds of it and its
    children, its stderr, and with ``sample_memory`` the peak of their summed
    memory (which the sampling itself slows)."""
    with tempfile.TemporaryFile() as err:
        cpu0 = os.times()
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, cwd=REPO)
        peak_rss = peak_pss = 0
        samples = 0
        while sample_memory and proc.poll() is None:
            # PSS costs the kernel a walk of every page table: every 5th sample (0.25 s).
            rss, pss = _tree_memory(proc.pid, with_pss=samples % 5 == 0)
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            samples += 1
            time.sleep(0.05)
        proc.wait()
        wall = time.perf_counter() - started
        cpu1 = os.times()
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        sys.exit(f"{shlex.join(argv)} failed ({proc.returncode}):\n{stderr[-3000:]}")
    cpu = (cpu1.children_user - cpu0.children_user) + (cpu1.children_system - cpu0.children_system)
    return {"wall_s": wall, "cpu_s": cpu, "peak_mib": peak_pss / 2**20,
            "peak_rss_mib": peak_rss / 2**20, "stderr": stderr}


def _wirestream() -> list[str]:
    script = Path(sys.executable).parent / "wirestream"
    return [str(script)] if script.exists() else [sys.executable, "-m", "wirestream.pipelines.cli"]


def pipeline_run(source: str, runner: str, beam_args: list[str], parse_only: bool,
                 sample_memory: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as out:
        argv = [*_wirestream(), "run", "--source", source, "--sink", f"jsonl:{out}",
                "--runner", runner, "--progress", "off", *beam_args]
        if parse_only:
            argv.append("--parse-only")
        result = timed_command(argv, sample_memory)
    summary = [line for line in result["stderr"].splitlines() if line.startswith("read=")]
    if not summary:
        sys.exit(f"no run summary in:\n{result['stderr'][-2000:]}")
    result["read"] = int(summary[-1].split()[0].split("=")[1])
    return result


def peer_child(source: str) -> None:
    """The peer, run in its own process: the obvious per-story loop."""
    import dateparser
    import langdetect
    from datasketch import MinHash, MinHashLSH

    from wirestream.schemas import Story
    from wirestream.transforms.io.archive import list_archive_files, read_archive_file
    from wirestream.transforms.parse import parse_record

    langdetect.DetectorFactory.seed = 0  # its default is a random seed per run
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    stories = duplicates = 0
    with tempfile.TemporaryFile("w", encoding="utf-8") as out:
        for archive in list_archive_files(source):
            for raw in read_archive_file(archive):
                for story in parse_record(raw):
                    if not isinstance(story, Story):
                        continue
                    stories += 1
                    text = f"{story.headline}\n{story.body}"
                    try:
                        language = langdetect.detect(text)
                    except langdetect.LangDetectException:
                        language = "und"
                    published = dateparser.parse(story.published_raw or "")
                    words = story.body.lower().split()
                    sketch = MinHash(num_perm=128)
                    sketch.update_batch([" ".join(words[i:i + 3]).encode("utf-8")
                                         for i in range(max(len(words) - 2, 1))])
                    key = f"{stories}"
                    duplicate_of = lsh.query(sketch)
                    duplicates += bool(duplicate_of)
                    lsh.insert(key, sketch)
                    out.write(json.dumps({"headline": story.headline, "language": language,
                                          "published_at": published.isoformat() if published else None,
                                          "duplicate_of": duplicate_of[:1]}) + "\n")
    print(f"read={stories} duplicates={duplicates}", file=sys.stderr)


def peer_run(source: str) -> dict:
    result = timed_command([sys.executable, __file__, "--peer-child", "--source", source], sample_memory=True)
    summary = [line for line in result["stderr"].splitlines() if line.startswith("read=")][-1]
    result["read"] = int(summary.split()[0].split("=")[1])
    return result


def describe(name: str, runs: list[dict], sampled: Optional[dict] = None) -> float:
    """Throughput, wall and CPU of the timed runs; memory of ``sampled`` (a run
    with the memory sampler), or of the runs themselves when they were sampled."""
    rates = [r["read"] / r["wall_s"] for r in runs]
    memory = [sampled] if sampled is not None else runs

    def spread(values, fmt):
        if len(values) == 1:
            return fmt.format(values[0])
        return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"
    print(f"{name:<6} stories {runs[0]['read']:,}  stories/s {spread(rates, '{:,.0f}')}  "
          f"wall s {spread([r['wall_s'] for r in runs], '{:.1f}')}  "
          f"CPU s {spread([r['cpu_s'] for r in runs], '{:.1f}')}  "
          f"peak MiB, all processes: PSS {spread([r['peak_mib'] for r in memory], '{:,.0f}')} "
          f"(RSS summed {spread([r['peak_rss_mib'] for r in memory], '{:,.0f}')})", flush=True)
    return statistics.median(rates)


def stage_profile(source: str) -> None:
    """CPU µs per story (median) and CPU seconds in all of each stage's plain function."""
    import pickle

    from wirestream.schemas import Story
    from wirestream.schemas.coders import EventRecordCoder
    from wirestream.transforms.dedup import DedupSettings, cluster_records
    from wirestream.transforms.io.archive import list_archive_files, read_archive_file
    from wirestream.transforms.normalise import normalise_story
    from wirestream.transforms.normalise.language import detect_language
    from wirestream.transforms.parse import parse_record
    from wirestream.transforms.tag import tag_record

    stages = ("read", "parse", "normalise", "(language)", "dedup", "tag", "encode",
              "coder", "(pickle)")
    timings: dict[str, list[float]] = {s: [] for s in stages}
    clock = time.process_time_ns

    def timed(stage, fn, *args):
        t = clock()
        out = fn(*args)
        timings[stage].append((clock() - t) / 1000)
        return out

    raws = []
    for archive in list_archive_files(source):
        t = clock()
        records = list(read_archive_file(archive))
        timings["read"] += [(clock() - t) / 1000 / max(len(records), 1)] * len(records)
        raws += records
    detect_language("warm up: load the profiles")
    tag_record(normalise_story(next(s for s in parse_record(raws[0]) if isinstance(s, Story))))
    records = []
    for raw in raws:
        for item in timed("parse", lambda r: list(parse_record(r)), raw):
            if isinstance(item, Story):
                record = timed("normalise", normalise_story, item)
                timed("(language)", detect_language, f"{record.headline}\n{record.body}")
                records.append(record)
    t = clock()
    cluster_records(records, DedupSettings())
    dedup_total = (clock() - t) / 1e9
    coder = EventRecordCoder()
    for record in records:
        timed("tag", tag_record, record)
        timed("encode", lambda r: json.dumps(r.to_dict(), ensure_ascii=False), record)
        timed("coder", lambda r: coder.decode(coder.encode(r)), record)
        timed("(pickle)", lambda r: pickle.loads(pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL)), record)
    totals = {stage: sum(v) / 1e6 for stage, v in timings.items()}
    totals["dedup"] = dedup_total
    counted = ("read", "parse", "normalise", "dedup", "tag", "encode")
    whole = sum(totals[s] for s in counted)
    print(f"\nper-stage CPU, plain functions, one process, {len(records):,} stories "
          "(in brackets: part of the stage above, or the alternative it replaces):")
    for stage in stages:
        median = (statistics.median(timings[stage]) if timings[stage]
                  else dedup_total / len(records) * 1e6)
        label = "mean" if stage == "dedup" else "median"
        share = f"{totals[stage] / whole:6.1%}" if stage in counted else ""
        print(f"  {stage:<11} {label} {median:>7.0f} µs/story   total {totals[stage]:6.1f} s   {share}")
    print(f"  coder: EventRecordCoder {statistics.mean(timings['coder']):.1f} µs per encode+decode, "
          f"pickled dataclass {statistics.mean(timings['(pickle)']):.1f} µs")
    print(f"  {'all':<11} {'':>14}              total {whole:6.1f} s   "
          f"-> {len(records) / whole:,.0f} stories/s of one core's CPU without Beam")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default=str(data_dir() / "reuters21578" / "original" / "*.sgm"))
    parser.add_argument("--runner", default="FnApiRunner")
    parser.add_argument("--beam-args", default="", help="extra Beam options for both pipeline runs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="full,floor,peer,profile")
    parser.add_argument("--peer-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_child:
        peer_child(args.source)
        return
    parts = set(args.only.split(","))
    stat_at_start = _cpu_times()
    beam_args = shlex.split(args.beam_args)
    print(f"machine: {os.cpu_count()} cores, {os.sysconf('SC_PHYS_PAGES') * _PAGE / 2**30:.0f} GB, "
          f"Python {sys.version.split()[0]}, runner {args.runner} {args.beam_args}, "
          f"{args.repeats} runs each; median (min–max); load average "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}", flush=True)
    # Full and floor runs alternate: this machine's speed drifts by tens of per
    # cent within minutes, and the ratio compares the two.
    kinds = [kind for kind in ("full", "floor") if kind in parts]
    runs: dict[str, list[dict]] = {kind: [] for kind in kinds}
    for _ in range(args.repeats):
        for kind in kinds:
            runs[kind].append(pipeline_run(args.source, args.runner, beam_args, kind == "floor"))
    rates = {kind: describe(kind, runs[kind], pipeline_run(args.source, args.runner, beam_args,
                                                           kind == "floor", sample_memory=True))
             for kind in kinds}
    full, floor = rates.get("full"), rates.get("floor")
    if full and floor:
        # Each full run beside the floor run after it, as well: the machine's drift
        # between the two is then seconds, not the sitting.
        pairs = sorted(floor_run["wall_s"] / full_run["wall_s"]
                       for full_run, floor_run in zip(runs["full"], runs["floor"]))
        print(f"full/floor throughput ratio: {full / floor:.2f} (of the medians); run by run "
              f"{statistics.median(pairs):.2f} ({pairs[0]:.2f}–{pairs[-1]:.2f})")
    if "peer" in parts:
        peer = describe("peer", [peer_run(args.source)])
        if full:
            print(f"pipeline/peer throughput: {full / peer:.1f}x")
    if "profile" in parts:
        stage_profile(args.source)
    print(f"load average at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}; "
          f"CPU time the hypervisor took (steal): {_steal_share(stat_at_start):.1%} of the sitting's")


def _cpu_times() -> list[int]:
    with open("/proc/stat") as f:
        return [int(v) for v in f.readline().split()[1:]]


def _steal_share(start: list[int]) -> float:
    """Of the machine's CPU time since ``start``, the share a virtual machine's host
    gave to others (the 8th field of /proc/stat): time a run waited that no figure shows."""
    spent = [now - then for now, then in zip(_cpu_times(), start)]
    return spent[7] / max(sum(spent), 1)


if __name__ == "__main__":
    main()
