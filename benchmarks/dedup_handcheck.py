"""Hand check of the dedup evaluation's labels (benchmarks/dedup_eval.py).

A fixed-seed sample of 100 pairs from ``dedup_eval.build()``:

* 40 positives (two stories in one group): real identical re-sends, each
  synthetic edit against its original, two-edit copies, and copy against copy;
* 40 labelled negatives: the real hard negatives (templated stories with other
  figures, one body under another company, same topic and day) and the
  synthetic ones (verbatim copy 10 days later, one figure changed), plus the
  updates, which the pair score also counts as negatives (CORRECTED reissue,
  version 2);
* 20 other cross-group pairs, negatives only because every pair not inside a
  group is one: 10 of the most alike (word 3-shingle Jaccard >= 0.3) and 10
  sharing a Reuters topic, a day and at least one word 3-shingle.

Reading showed where the negatives went wrong: two real stories about one
company, or under one headline, within a day are often one story re-sent,
corrected or rewritten, and figures written two ways (12-1/2 and 12.5) made
such re-sends look like other facts. A first census of every cross-group pair
naming one ticker on one day (26 pairs) found 5 duplicates labelled negative,
17 debatable and 4 right. dedup_eval now leaves such real pairs out as
ambiguous and reads figures one way. So, besides the random sample, a census
(no random sample, reported apart; pairs already in the sample count there)
reads every cross-group pair published within 24 hours of each other whose
headlines name one company or read the same
(``dedup_eval.same_company_or_headline``; now only copies of two originals can
be such a pair), and every such pair whose bodies are alike (Jaccard >= 0.5)
under headlines that do not name two companies (market tables, price reports,
contract awards).

Pairs read while dedup_eval still labelled them negative and that it now
leaves out as ambiguous are kept in dedup_handcheck.json as "excluded as
ambiguous": the first census, and 15 more that the present census finds in the
evaluation as it was before that change. Their verdict is on the label they had;
the summary checks that they are no longer labelled.

Each pair was read and judged as a news editor would ("agree", "disagree",
"debatable", with a note); the verdicts are in dedup_handcheck.json.

    .venv/bin/python -m benchmarks.dedup_handcheck --print  # the sample, to read
    .venv/bin/python -m benchmarks.dedup_handcheck          # summary of the verdicts

The summary fails (exit 1) when the verdicts' pair ids are not the current
sample's, or a pair recorded as excluded is labelled again, so a change to the
evaluation cannot leave the check silently stale.
"""

from __future__ import annotations

import argparse
import difflib
import json
import random
import sys
from collections import Counter, defaultdict
from datetime import datetime
from itertools import combinations
from pathlib import Path

from benchmarks.dedup_data import reuters_rows
from benchmarks.dedup_eval import (EDITS, EvalStory, Evaluation, build, company_relation, numbers,
                                   same_company_or_headline, shingles, similar_pairs)

VERDICTS = Path(__file__).with_name("dedup_handcheck.json")
CENSUS = "census_same_company_same_day"
CENSUS_ALIKE = "census_alike_same_day"
EXCLUDED = "excluded as ambiguous"  # the label of a pair dedup_eval no longer labels
SEED = 11
REAL_NEGATIVES = ["templated_other_figures", "same_body_other_company", "same_topic_same_day"]
SYNTHETIC_NEGATIVES = ["copy_10_days_later", "figure_changed", "corrected_reissue", "version_2"]
# category -> pairs to sample; the positives' single-edit categories are the edit names
QUOTA = {"real_resend": 8, **{edit: 4 for edit in EDITS}, "two_edits": 4, "copy_vs_copy": 4,
         "templated_other_figures": 13, "same_body_other_company": 1, "same_topic_same_day": 12,
         "copy_10_days_later": 5, "figure_changed": 5, "corrected_reissue": 2, "version_2": 2,
         "cross_group_alike": 10, "cross_group_same_topic_day": 10}


def story_key(s: EvalStory) -> str:
    return s.record.story_id + (f"v{s.record.version}" if s.record.version else "")


def pair_id(ev: Evaluation, a: int, b: int) -> str:
    return f"{story_key(ev.stories[a])}~{story_key(ev.stories[b])}"


def positive_pools(ev: Evaluation) -> dict[str, list[tuple[int, int]]]:
    groups = defaultdict(list)
    for i, s in enumerate(ev.stories):
        groups[s.group].append(i)
    pools = defaultdict(list)
    for members in groups.values():
        for a, b in combinations(members, 2):
            edits = sorted((ev.stories[a].edit, ev.stories[b].edit))
            if edits[0] == "real_resend":
                pools["real_resend"].append((a, b))
            elif "original" not in edits:
                pools["copy_vs_copy"].append((a, b))
            else:
                edit = edits[1] if edits[0] == "original" else edits[0]
                pools["two_edits" if "+" in edit else edit].append((a, b))
    return pools


def negative_pools(ev: Evaluation) -> dict[str, list[tuple[int, int]]]:
    """The pairs dedup_eval labels as negatives on purpose. Its real negatives are
    added two at a time, each story in a group of its own; a synthetic negative or
    update is paired with the original it was made from."""
    pools = defaultdict(list)
    for kind in REAL_NEGATIVES:
        members = [i for i, s in enumerate(ev.stories) if s.edit == kind]
        pools[kind] = list(zip(members[::2], members[1::2]))
    original = {m["newid"]: i for i, m in enumerate(ev.manifest) if m["edit"] == "original"}
    for i, m in enumerate(ev.manifest):
        if m["edit"] in SYNTHETIC_NEGATIVES:
            pools[m["edit"]].append((original[m["newid"]], i))
    return pools


def cross_group_pools(ev: Evaluation, labelled: set[tuple[int, int]]) -> dict[str, list[tuple[int, int]]]:
    """Pairs in different groups that are not labelled on purpose and do not come
    from one original (those are the synthetic negatives again)."""
    topics = {r["newid"]: set(r["topics"]) for r in reuters_rows()}
    origin = [m["newid"] for m in ev.manifest]

    def unlabelled(a: int, b: int) -> bool:
        return (ev.stories[a].group != ev.stories[b].group and origin[a] != origin[b]
                and (a, b) not in labelled)

    sets = {i: shingles(s.record.body) for i, s in enumerate(ev.stories)}
    alike = similar_pairs(sets, 0.3)
    by_day_topic = defaultdict(list)
    for i, s in enumerate(ev.stories):
        for topic in topics[origin[i]]:
            by_day_topic[(s.record.published_at[:10], topic)].append(i)
    same = {p for members in by_day_topic.values() for p in combinations(members, 2) if sets[p[0]] & sets[p[1]]}
    return {"cross_group_alike": sorted(p for p in alike if unlabelled(*p)),
            "cross_group_same_topic_day": sorted(p for p in same if unlabelled(*p) and p not in alike)}


def same_day_pairs(ev: Evaluation) -> list[tuple[int, int]]:
    """Cross-group pairs (not from one original) published within 24 hours of each other."""
    origin = [m["newid"] for m in ev.manifest]
    when = [datetime.strptime(s.record.published_at, "%Y-%m-%dT%H:%M:%SZ").timestamp() for s in ev.stories]
    order = sorted(range(len(ev.stories)), key=lambda i: when[i])
    pairs = []
    for n, a in enumerate(order):
        for b in order[n + 1:]:
            if when[b] - when[a] >= 86400:
                break
            if ev.stories[a].group != ev.stories[b].group and origin[a] != origin[b]:
                pairs.append((min(a, b), max(a, b)))
    return sorted(pairs)


def census(ev: Evaluation) -> list[tuple[str, tuple[int, int]]]:
    """Cross-group pairs within 24 hours whose headlines name one company or read the
    same (the pairs dedup_eval leaves out when both are real), then those whose bodies
    are alike (Jaccard >= 0.5) under headlines that do not name two companies."""
    def headlines(pair: tuple[int, int]) -> tuple[str, str]:
        return ev.stories[pair[0]].record.headline, ev.stories[pair[1]].record.headline

    close = same_day_pairs(ev)
    headline = {p for p in close if same_company_or_headline(*headlines(p))}
    sets = {i: shingles(ev.stories[i].record.body) for p in close for i in p}
    alike = {p for p in close if p not in headline and company_relation(*headlines(p)) is not False
             and len(sets[p[0]] & sets[p[1]]) >= 0.5 * len(sets[p[0]] | sets[p[1]])}
    return [(CENSUS, p) for p in sorted(headline)] + [(CENSUS_ALIKE, p) for p in sorted(alike)]


def sample(ev: Evaluation) -> list[dict]:
    """The random sample (seeded), then the census pairs it does not already hold."""
    rng = random.Random(SEED)
    pools = {**positive_pools(ev), **negative_pools(ev)}
    labelled = {p for kind in REAL_NEGATIVES + SYNTHETIC_NEGATIVES for p in pools[kind]}
    pools.update(cross_group_pools(ev, labelled))
    drawn = [(category, pair) for category, n in QUOTA.items()
             for pair in rng.sample(sorted(pools[category]), min(n, len(pools[category])))]
    seen = {pair for _, pair in drawn}
    drawn += [(category, pair) for category, pair in census(ev) if pair not in seen]
    return [{"pair_id": pair_id(ev, a, b), "category": category, "a": a, "b": b,
             "label": "duplicate" if ev.stories[a].group == ev.stories[b].group else "not duplicate"}
            for category, (a, b) in drawn]


def _clip(body: str) -> str:
    return body if len(body) <= 900 else f"{body[:600]} [... {len(body) - 800} chars ...] {body[-200:]}"


def _word_diff(a: str, b: str, limit: int = 12) -> list[str]:
    wa, wb = a.split(), b.split()
    ops = [op for op in difflib.SequenceMatcher(None, wa, wb, autojunk=False).get_opcodes() if op[0] != "equal"]
    lines = [f"  @{i1}: -[{' '.join(wa[i1:i2])[:160]}] +[{' '.join(wb[j1:j2])[:160]}]"
             for _, i1, i2, j1, j2 in ops[:limit]]
    return lines + ([f"  ... {len(ops) - limit} more changes"] if len(ops) > limit else [])


def print_pair(ev: Evaluation, n: int, pair: dict) -> None:
    a, b = ev.stories[pair["a"]], ev.stories[pair["b"]]
    sa, sb = shingles(a.record.body), shingles(b.record.body)
    print(f"=== {n}. {pair['pair_id']}  [{pair['category']}]  label: {pair['label']}")
    print(f"jaccard {len(sa & sb) / len(sa | sb):.2f}, containment {len(sa & sb) / min(len(sa), len(sb)):.2f}; "
          f"figures only in A: {sorted(numbers(a.record.body) - numbers(b.record.body))[:12]}, "
          f"only in B: {sorted(numbers(b.record.body) - numbers(a.record.body))[:12]}")
    for tag, s in (("A", a), ("B", b)):
        print(f"{tag} {story_key(s)} ({s.edit}, group {s.group}) {s.record.published_at} {s.record.source}")
        print(f"  headline: {s.record.headline}")
        print(f"  body: {_clip(s.record.body)}")
    if difflib.SequenceMatcher(None, a.record.body.split(), b.record.body.split(), autojunk=False).ratio() >= 0.5:
        print("word diff A -> B:")
        print("\n".join(_word_diff(a.record.body, b.record.body)) or "  (bodies identical)")
    print()


def still_labelled(ev: Evaluation, pair: str) -> bool:
    """Are both stories of a pair in the evaluation, in different groups?"""
    index = {story_key(s): i for i, s in enumerate(ev.stories)}
    a, b = (index.get(key) for key in pair.split("~"))
    return a is not None and b is not None and ev.stories[a].group != ev.stories[b].group


def summary(ev: Evaluation, picked: list[dict]) -> int:
    try:
        recorded = json.loads(VERDICTS.read_text(encoding="utf-8"))
    except FileNotFoundError:
        print(f"{VERDICTS.name} is missing: read the pairs with --print and write the verdicts")
        return 1
    verdicts = [v for v in recorded if v["label"] != EXCLUDED]
    excluded = [v for v in recorded if v["label"] == EXCLUDED]
    relabelled = [v["pair_id"] for v in excluded if still_labelled(ev, v["pair_id"])]
    if relabelled:
        print(f"{len(relabelled)} pairs recorded in {VERDICTS.name} as {EXCLUDED} are labelled again: "
              f"{relabelled[:4]}. Read them again with --print and update the verdicts.")
        return 1
    by_id = {v["pair_id"]: v for v in verdicts}
    wanted = {p["pair_id"]: p["label"] for p in picked}
    stale = sorted(set(by_id) ^ set(wanted)) + [i for i in sorted(set(by_id) & set(wanted))
                                                if by_id[i]["label"] != wanted[i]]
    bad = [v["pair_id"] for v in verdicts if v.get("verdict") not in ("agree", "disagree", "debatable")]
    if stale or bad or len(by_id) != len(verdicts):
        print(f"{VERDICTS.name} does not match the current sample ({len(stale)} pair ids or labels differ: "
              f"{stale[:4]}; {len(bad)} without a valid verdict; {len(verdicts) - len(by_id)} repeated). "
              f"Read the pairs again with --print and update the verdicts.")
        return 1
    print(f"Hand check of the labels of benchmarks/dedup_eval.py: {len(picked)} pairs (seed {SEED})")
    row = "{:<34} {:<14} {:>4} {:>5} {:>8} {:>9}"
    print(row.format("category", "label", "read", "agree", "disagree", "debatable"))
    totals = defaultdict(Counter)
    for category in [*QUOTA, CENSUS, CENSUS_ALIKE]:
        pairs = [p for p in picked if p["category"] == category]
        if not pairs:
            continue
        counts = Counter(by_id[p["pair_id"]]["verdict"] for p in pairs)
        part = "census" if category in (CENSUS, CENSUS_ALIKE) else f"sample, {pairs[0]['label']}"
        totals[part].update(counts)
        print(row.format(category, pairs[0]["label"], len(pairs), counts["agree"], counts["disagree"],
                         counts["debatable"]))
    for part, counts in totals.items():
        print(row.format(f"all: {part}", "", sum(counts.values()), counts["agree"], counts["disagree"],
                         counts["debatable"]))
    if excluded:
        print(f"\nPairs read while dedup_eval still labelled them, now {EXCLUDED} (verdict on the "
              f"label they had):")
        for category in dict.fromkeys(v["category"] for v in excluded):
            counts = Counter(v["verdict"] for v in excluded if v["category"] == category)
            print(row.format(category, excluded[0]["was"], sum(counts.values()), counts["agree"],
                             counts["disagree"], counts["debatable"]))
        counts = Counter(v["verdict"] for v in excluded)
        print(row.format(f"all: {EXCLUDED}", "", len(excluded), counts["agree"], counts["disagree"],
                         counts["debatable"]))
    print("\nNot agreed:")
    for p in picked:
        v = by_id[p["pair_id"]]
        if v["verdict"] != "agree":
            print(f"  {v['verdict']:<9} {p['pair_id']} [{p['category']}] {v.get('note', '')}")
    if excluded:
        print(f"\n{EXCLUDED.capitalize()} (the verdict is on the label '{excluded[0]['was']}' they had):")
        for v in excluded:
            print(f"  {v['verdict']:<9} {v['pair_id']} [{v['category']}] {v.get('note', '')}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print", action="store_true", help="print every sampled pair to read")
    args = parser.parse_args(argv)
    ev = build()
    picked = sample(ev)
    if args.print:
        for n, pair in enumerate(picked, 1):
            print_pair(ev, n, pair)
        return 0
    return summary(ev, picked)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
