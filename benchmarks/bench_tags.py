"""Tag stage on Reuters-21578: country precision/recall against PLACES, and speed.

The tagger sees only the text (headline, dateline, body): PLACES are the
reference, so the records are built without ``place_labels`` and, for the topic
figure, without the TOPICS subjects. Reference labels are mapped to ISO codes
with the same table production uses for structured labels
(transforms/data/places.json, ``place_labels``).

    python benchmarks/bench_tags.py [--limit N] [--errors 15]

Data: $WIRESTREAM_DATA, else <repo>/../shared/data.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import statistics
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.datasets import data_dir  # noqa: E402

from wirestream.schemas import EventRecord, Origin  # noqa: E402
from wirestream.transforms.normalise import unnormalised_record  # noqa: E402
from wirestream.transforms.parse.errors import ParseError  # noqa: E402
from wirestream.transforms.parse.json_formats import story_from_json_object  # noqa: E402
from wirestream.transforms.tag import country_of_place_label, tag_record  # noqa: E402
from wirestream.transforms.tag.gazetteer import load_gazetteer  # noqa: E402
from wirestream.transforms.tag.rules import load_rules  # noqa: E402

ECONOMY = "medtop:04000000"



def reuters_record(story: dict) -> EventRecord:
    """The record the pipeline makes (through the real parser), minus PLACES and
    TOPICS, which are the reference."""
    published = datetime.strptime(story["date_raw"].strip()[:11].strip(), "%d-%b-%Y").strftime("%Y-%m-%dT00:00:00Z")
    origin = Origin(kind="file", ingested_at=published, path=story["source_file"])
    parsed = story_from_json_object(dict(story, places=[], topics=[]), origin)
    # Tagging reads the publication day (historic states) and nothing else of normalisation.
    return dataclasses.replace(unnormalised_record(parsed), published_at=published, language="en")


class Score:
    def __init__(self) -> None:
        self.tp = self.fp = self.fn = self.stories = 0

    def add(self, predicted: set[str], expected: set[str]) -> None:
        self.stories += 1
        self.tp += len(predicted & expected)
        self.fp += len(predicted - expected)
        self.fn += len(expected - predicted)

    def line(self, name: str) -> str:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return f"{name:<28} stories {self.stories:>6}  precision {p:.3f}  recall {r:.3f}  F1 {f:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=0, help="stories to read (0 = all 21,578)")
    ap.add_argument("--errors", type=int, default=0, help="print the N most frequent false/missed codes")
    args = ap.parse_args()

    path = data_dir() / "reuters21578" / "reuters21578.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        stories = [json.loads(line) for line in f]
    if args.limit:
        stories = stories[:args.limit]

    t0 = time.perf_counter()
    load_gazetteer(), load_rules()
    load_s = time.perf_counter() - t0

    unmapped = sorted({p for s in stories for p in s["places"] if not country_of_place_label(p)})
    scores = {"all labelled": Score(), "LEWISSPLIT=TRAIN": Score(), "LEWISSPLIT=TEST": Score()}
    false_pos, missed = Counter(), Counter()
    topic_hits = topic_stories = tagged = 0
    times_us = []
    empty = 0
    for story in stories:
        try:
            record = reuters_record(story)
        except ParseError:  # a dead letter in the pipeline (NEWID 12793 has no text)
            empty += 1
            continue
        t = time.perf_counter_ns()
        tag_record(record)
        times_us.append((time.perf_counter_ns() - t) / 1000)
        tagged += all(k in record.tags for k in ("countries", "places", "people", "organisations",
                                                  "topics", "event_types"))
        if story["places"]:
            expected = {country_of_place_label(p) for p in story["places"]} - {None}
            predicted = set(record.tags["countries"])
            scores["all labelled"].add(predicted, expected)
            split = f"LEWISSPLIT={story['lewissplit']}"
            if split in scores:
                scores[split].add(predicted, expected)
            false_pos.update(predicted - expected)
            missed.update(expected - predicted)
        if story["topics"]:
            topic_stories += 1
            topic_hits += any(t["code"] == ECONOMY for t in record.tags["topics"])

    total_s = sum(times_us) / 1e6
    print(f"Reuters-21578: {len(stories)} stories ({empty} without text: dead letters), {tagged} with "
          f"all six tag lists; gazetteer+rules load {load_s:.2f} s")
    print(f"reference: PLACES labels -> ISO alpha-2 (unmapped labels: {unmapped or 'none'}); tagger sees text only")
    for name, score in scores.items():
        print("countries " + score.line(name))
    print(f"topics: stories with TOPICS tagged {ECONOMY} from text alone: {topic_hits}/{topic_stories} "
          f"= {topic_hits / max(topic_stories, 1):.3f}")
    q = statistics.quantiles(times_us, n=100)
    print(f"speed (one process): median {statistics.median(times_us):.0f} us, p95 {q[94]:.0f} us, "
          f"p99 {q[98]:.0f} us, mean {statistics.fmean(times_us):.0f} us, {len(stories) / total_s:,.0f} stories/s")
    if args.errors:
        print("most frequent false countries:", false_pos.most_common(args.errors))
        print("most frequent missed countries:", missed.most_common(args.errors))


if __name__ == "__main__":
    main()
