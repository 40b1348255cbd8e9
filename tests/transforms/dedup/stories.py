"""Hand-made stories for the dedup tests: an original and its copies, chains,
versions, a templated burst, and real Reuters stories by number."""

import copy
import gzip
import json
import random
from datetime import datetime, timedelta

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from wirestream.schemas import EventRecord, Origin, derive_event_id
from benchmarks.bench_dedup import cluster_fields
from wirestream.transforms.dedup import DedupSettings, NearDuplicateClusters, cluster_records


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


def mixed_records():
    records = copies() + [story("n1", STORY, "1987-03-02T09:00:00Z", version=1, item=7),
                          story("n1", OTHER_STORY, "1987-03-02T13:00:00Z", version=2, item=8)]
    random.Random(3).shuffle(records)
    return records


def chain_records():
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


def templated_burst(count, published="1987-03-02T10:00:00Z"):
    """``count`` stories of one template: the same boilerplate body, a different last line."""
    names = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
    start = datetime.fromisoformat(published.replace("Z", "+00:00"))
    return [story(f"t{i}", f"{STORY} Filed by the {names[i % 10]} {names[i // 10 % 10]} desk.",
                  (start + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"), source=f"feed{i}", item=i)
            for i in range(count)]


BURST_SETTINGS = DedupSettings(compare_earliest=4, compare_latest=4)


def reuters_stories(shared_data, newids):
    from wirestream.transforms.normalise.text import clean_text
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


def run_beam(records, settings, reshuffle):
    expected = sorted(decisions(cluster_records(copy.deepcopy(records), settings)).items())
    with beam.Pipeline(runner="FnApiRunner") as p:
        clustered, dead_letters = p | beam.Create(records, reshuffle=reshuffle) | NearDuplicateClusters(settings)
        out = clustered | beam.Map(lambda r: ((r.story_id, r.version), cluster_fields(r)))
        assert_that(out, equal_to(expected))
        assert_that(dead_letters, equal_to([]), label="NoDeadLetters")
