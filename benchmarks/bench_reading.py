"""What reading and parsing cost, and what hostile or damaged input costs.

    python benchmarks/bench_reading.py [--repeats 5]

1. Read + parse of real archives, per story (median of the repeats): the 22
   Reuters-21578 SGML files and the corpus as one .jsonl.gz (read through
   Python's gzip in chunks, so a truncated stream is reported).
2. A 6.9 MB RSS feed of 3,000 items: stories out (each item is held to the
   payload limit on its own), time and peak memory of the parse.
3. Hostile documents: 100,000 nested `[` in a .json file, 100,000 nested XML
   elements, a 50 MB .jsonl.gz cut in half: time to the dead letter.

Everything runs in this process, without Beam.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.datasets import data_dir  # noqa: E402
from wirestream.schemas import DeadLetter, Origin, RawRecord, Story  # noqa: E402
from wirestream.transforms.io.archive import list_archive_files, read_archive_file  # noqa: E402
from wirestream.transforms.parse import parse_record  # noqa: E402

ORIGIN = Origin(kind="file", ingested_at="2024-01-01T00:00:00Z", path="bench")


def read_and_parse(source: str) -> tuple[int, int, float]:
    """(stories, dead letters, seconds) for every file of SOURCE."""
    stories = dead = 0
    started = time.perf_counter()
    for archive in list_archive_files(source):
        for raw in read_archive_file(archive):
            for out in parse_record(raw):
                stories += isinstance(out, Story)
                dead += isinstance(out, DeadLetter)
    return stories, dead, time.perf_counter() - started


def archives(repeats: int) -> None:
    corpus = data_dir() / "reuters21578"
    for label, source in (("Reuters-21578 SGML, 22 files", str(corpus / "original" / "*.sgm")),
                          ("Reuters-21578 .jsonl.gz", str(corpus / "reuters21578.jsonl.gz"))):
        runs = [read_and_parse(source) for _ in range(repeats)]
        stories, dead, _ = runs[0]
        seconds = statistics.median(r[2] for r in runs)
        print(f"{label}: {stories:,} stories, {dead} dead letters; read + parse "
              f"{seconds / max(stories, 1) * 1e6:.0f} µs per story (median of {repeats}, "
              f"{min(r[2] for r in runs):.2f}-{max(r[2] for r in runs):.2f} s)")


def big_feed() -> None:
    items = "".join(f"<item><guid>g{n}</guid><title>Story {n}</title><description>Body of "
                    f"story {n}. {'word ' * 450}</description></item>" for n in range(3000))
    feed = f"<?xml version='1.0'?><rss><channel><title>Wire</title>{items}</channel></rss>".encode()
    started = time.perf_counter()
    out = list(parse_record(RawRecord(feed, ORIGIN, "xml")))
    seconds = time.perf_counter() - started
    del out
    tracemalloc.start()  # a second pass: tracing slows the parse several times over
    out = list(parse_record(RawRecord(feed, ORIGIN, "xml")))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    stories = sum(isinstance(o, Story) for o in out)
    print(f"RSS feed of {len(feed) / 1e6:.1f} MB, 3,000 items: {stories:,} stories, "
          f"{len(out) - stories} dead letters, parsed in {seconds:.2f} s, peak "
          f"{peak / 2**20:.0f} MiB traced")


def hostile(directory: Path) -> None:
    cases = {
        "deep.json": b"[" * 100_000 + b"]" * 100_000,
        "deep.xml": b"<rss>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</rss>",
    }
    lines = b"".join(b'{"id": "s%d", "title": "Story %d", "body": "%s"}\n'
                     % (n, n, b"text " * 100) for n in range(100_000))
    whole = gzip.compress(lines)
    cases["cut.jsonl.gz"] = whole[:len(whole) // 2]
    for name, data in cases.items():
        (directory / name).write_bytes(data)
        started = time.perf_counter()
        stories, dead, _ = read_and_parse(str(directory / name))
        seconds = time.perf_counter() - started
        print(f"{name} ({len(data) / 1e6:.1f} MB on disk): {stories:,} stories, {dead} dead "
              f"letter(s), {seconds:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--archives-only", action="store_true",
                        help="only (1): also runs on a checkout from before these limits")
    args = parser.parse_args()
    archives(args.repeats)
    if args.archives_only:
        return
    big_feed()
    with tempfile.TemporaryDirectory() as directory:
        hostile(Path(directory))


if __name__ == "__main__":
    main()
