"""Quality and cost of the normalise stage on real data.

    python benchmarks/bench_normalise.py [--only language,dates,cost] [--langdetect-baseline]

Prints:
- language accuracy on the Lingua sentences (per language and overall, over
  the languages langdetect has profiles for) and on stories of 300+
  characters joined from sentences of one language;
- date accuracy through `parse_time` on the dateparser 1.5.0 test rows that
  dateparser itself gets right, and the share of Reuters-21578 DATE fields read;
- median cost per story of each normalisation step on Reuters-21578.

Data: $WIRESTREAM_DATA, else ../shared/data next to the repository.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.datasets import data_dir  # noqa: E402

from wirestream.schemas import Origin, Story  # noqa: E402
from wirestream.transforms.normalise import (  # noqa: E402
    NormaliseSettings, normalise_story, reference_time)
from wirestream.schemas.times import utc_iso  # noqa: E402
from wirestream.transforms.normalise.dates import normalise_time, parse_time  # noqa: E402
from wirestream.transforms.normalise.language import (  # noqa: E402
    _PROFILE_CODES, choose_language, detect_language, normalise_language_tag)
from wirestream.transforms.normalise.mentions import dates_mentioned  # noqa: E402
from wirestream.transforms.normalise.text import clean_text, strip_boilerplate  # noqa: E402

DATA = data_dir()
STORY_MIN_CHARS = 300


def supported_languages() -> set[str]:
    from langdetect.detector_factory import PROFILES_DIRECTORY
    return {_PROFILE_CODES.get(n, n) for n in os.listdir(PROFILES_DIRECTORY)}


def join_into_stories(texts: list[str]) -> list[str]:
    """Consecutive sentences joined until each story has 300+ characters."""
    stories, current = [], ""
    for text in texts:
        current = f"{current} {text}" if current else text
        if len(current) >= STORY_MIN_CHARS:
            stories.append(current)
            current = ""
    return stories


def accuracy_table(title: str, samples: list[tuple[str, str]], predict) -> float:
    right, total, confusions = Counter(), Counter(), Counter()
    for label, text in samples:
        guess = predict(text)
        total[label] += 1
        right[label] += guess == label
        if guess != label:
            confusions[(label, guess)] += 1
    overall = sum(right.values()) / sum(total.values())
    print(f"\n{title}: {overall:.2%} of {sum(total.values())}")
    print("  " + "  ".join(f"{lang} {right[lang] / total[lang]:.1%}" for lang in sorted(total)))
    print("  most frequent confusions (label->guess): "
          + ", ".join(f"{a}->{b} {n}" for (a, b), n in confusions.most_common(8)))
    return overall


def bench_language(langdetect_baseline: bool) -> None:
    rows = [json.loads(line) for line in
            (DATA / "lingua_langid_sentences" / "sentences.jsonl").open(encoding="utf-8")]
    supported = supported_languages()
    excluded = sorted({r["lang"] for r in rows} - supported)
    print(f"== Language: {len(rows)} Lingua sentences, {len({r['lang'] for r in rows})} languages; "
          f"excluded (no langdetect profile): {', '.join(excluded)}")
    sentences = [(r["lang"], r["text"]) for r in rows if r["lang"] in supported]

    timings = []

    def ours(text: str) -> str:
        start = time.perf_counter()
        code = detect_language(text).code
        timings.append(time.perf_counter() - start)
        return code

    detect_language("warm up: load the profiles")
    accuracy_table("Sentences, wirestream detector", sentences, ours)
    print(f"  median {statistics.median(timings) * 1e6:.0f} us per sentence")

    by_language: dict[str, list[str]] = {}
    for lang, text in sentences:
        by_language.setdefault(lang, []).append(text)
    stories = [(lang, story) for lang, texts in sorted(by_language.items())
               for story in join_into_stories(texts)]
    timings.clear()
    accuracy_table(f"Stories of {STORY_MIN_CHARS}+ chars joined from one language's sentences",
                   stories, ours)
    print(f"  median {statistics.median(timings) * 1e6:.0f} us per story")

    print("\nDeclared-language rule (declared 'en' everywhere): threshold, mislabelled non-English "
          "stories corrected, all-English Reuters stories wrongly overridden")
    mislabelled = [(lang, detect_language(text)) for lang, text in stories if lang != "en"]
    reuters = [detect_language(f"{clean_text(s.headline)}\n{strip_boilerplate(clean_text(s.body))[0]}")
               for s in map(reuters_story, reuters_rows())]
    min_letters = NormaliseSettings().language_override_min_letters
    for threshold in (0.9, 0.99, 0.999, 0.9999):
        fixed = sum(choose_language("en", d, threshold, min_letters)[0] == lang for lang, d in mislabelled)
        wrong = sum(choose_language("en", d, threshold, min_letters)[0] != "en" for d in reuters)
        print(f"  {threshold}: {fixed / len(mislabelled):.2%} corrected, {wrong / len(reuters):.2%} "
              f"of Reuters overridden ({wrong})")

    unsupported = [(r["lang"], r["text"]) for r in rows if r["lang"] not in supported]
    guesses = Counter((lang, detect_language(text).code) for lang, text in unsupported)
    print("\nExcluded languages are reported as: "
          + ", ".join(f"{a}->{b} {n}" for (a, b), n in guesses.most_common(8)))

    if langdetect_baseline:
        from langdetect import DetectorFactory
        from langdetect.detector_factory import PROFILES_DIRECTORY
        factory = DetectorFactory()
        factory.load_profile(PROFILES_DIRECTORY)
        factory.set_seed(0)
        timings.clear()

        def baseline(text: str) -> str:
            start = time.perf_counter()
            detector = factory.create()
            detector.append(text)
            try:
                code = detector.detect()
                code = _PROFILE_CODES.get(code, code)
            except Exception:  # noqa: BLE001 - langdetect raises on text without features
                code = "und"
            timings.append(time.perf_counter() - start)
            return code

        accuracy_table("Sentences, langdetect 1.0.9 detect() with seed 0 (baseline)", sentences,
                       baseline)
        print(f"  median {statistics.median(timings) * 1e6:.0f} us per sentence")


# Settings that only fix "now" or the output shape; rows using any other
# dateparser setting ask for behaviour the pipeline's normaliser does not offer.
_NEUTRAL_SETTINGS = {"NORMALIZE", "RELATIVE_BASE", "RETURN_TIME_AS_PERIOD"}
_DEFAULT_REFERENCE = "2014-09-01T10:30:00"


def date_case_language(row: dict) -> str | None:
    """The story language the pipeline would pass: the row's language, else
    the language named by the test's comment ("Russian dates")."""
    if row.get("languages"):
        return normalise_language_tag(row["languages"][0])[0]
    hint = (row.get("language_hint") or "").split(" ")[0]
    return normalise_language_tag(hint)[0] if hint else None


def bench_dates() -> None:
    rows = [json.loads(line) for line in
            (DATA / "dateparser_cases" / "dateparser_cases.jsonl").open(encoding="utf-8")]
    verified = [r for r in rows if r["verified_dateparser_1_5_0"] and r["kind"] in ("parse", "relative")]
    print(f"\n== Dates: {len(verified)} dateparser_cases rows verified against dateparser 1.5.0 "
          f"(kinds parse + relative; the {sum(r['kind'] == 'search' for r in rows)} search_dates rows "
          "test text search, not field parsing)")
    results: dict[str, list[bool]] = {"all": [], "default settings": []}
    failures = []
    timings = []
    for row in verified:
        settings = row.get("settings") or {}
        reference = datetime.fromisoformat(
            settings.get("RELATIVE_BASE") or row.get("now") or _DEFAULT_REFERENCE)
        reference = reference.replace(tzinfo=timezone.utc) if reference.tzinfo is None else reference
        expected = datetime.fromisoformat(row["expected"])
        expected = expected.replace(tzinfo=timezone.utc) if expected.tzinfo is None else expected
        start = time.perf_counter()
        parsed = parse_time(row["text"], "UTC", reference, date_case_language(row))
        timings.append(time.perf_counter() - start)
        ok = parsed is not None and utc_iso(parsed.instant) == utc_iso(expected)
        results["all"].append(ok)
        if set(settings) <= _NEUTRAL_SETTINGS and not (row.get("params") or {}).keys() - {"period"}:
            results["default settings"].append(ok)
            if not ok:
                failures.append((row["text"], row["expected"],
                                 utc_iso(parsed.instant) if parsed else None))
    for name, oks in results.items():
        print(f"  {name}: {sum(oks) / len(oks):.2%} of {len(oks)} rows")
    print(f"  median {statistics.median(timings) * 1e6:.0f} us per row (cold cache)")
    print(f"  default-settings failures: {failures[:10]}")

    reuters = list(reuters_rows())
    origin = Origin(kind="file", ingested_at="2026-01-01T00:00:00Z")
    reference = reference_time(Story(format="reuters-sgml", headline="", body="", origin=origin))
    read, notes = 0, Counter()
    for row in reuters:
        value, quality = normalise_time("published_at", row["date_raw"], "UTC", reference, "en")
        read += value is not None
        notes.update(q.split(" in ")[0] for q in quality)
    print(f"  Reuters-21578 DATE fields read: {read}/{len(reuters)} ({read / len(reuters):.3%}); "
          f"quality notes: {dict(notes)}")


def reuters_rows():
    with gzip.open(DATA / "reuters21578" / "reuters21578.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def reuters_story(row: dict) -> Story:
    return Story(format="reuters-sgml", headline=row["title"] or "", body=row["body"] or "",
                 origin=Origin(kind="file", ingested_at="2026-01-01T00:00:00Z"),
                 story_id=f"reuters21578:{row['newid']}", source="Reuters",
                 published_raw=row["date_raw"])


def median_us(step, items) -> float:
    timings = []
    for item in items:
        start = time.perf_counter()
        step(item)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings) * 1e6


def bench_cost() -> None:
    stories = [reuters_story(row) for row in reuters_rows()]
    settings = NormaliseSettings()
    detect_language("warm up: load the profiles")
    cleaned = [(clean_text(s.headline), strip_boilerplate(clean_text(s.body))[0]) for s in stories]
    reference = reference_time(stories[0])
    print(f"\n== Cost per story on Reuters-21578 ({len(stories)} stories; median microseconds, "
          "one process, caches warm from earlier steps only)")
    steps = {
        "text: clean_text (headline + body)": (
            lambda s: (clean_text(s.headline), clean_text(s.body)), stories),
        "text: strip_boilerplate": (lambda hb: strip_boilerplate(hb[1]), cleaned),
        "language: detect_language": (
            lambda hb: detect_language(f"{hb[0]}\n{hb[1]}", settings.language_min_letters,
                                       settings.language_max_chars), cleaned),
        "dates: published_at": (
            lambda s: normalise_time("published_at", s.published_raw, "UTC", reference, "en"),
            stories),
        "dates: dates_mentioned": (
            lambda hb: dates_mentioned(f"{hb[0]}\n\n{hb[1]}", reference.date()), cleaned),
        "normalise_story (all steps, ids, record)": (
            lambda s: normalise_story(s, settings), stories),
    }
    medians = {}
    for name, (step, items) in steps.items():
        medians[name] = median_us(step, items)
        print(f"  {name:45s} {medians[name]:8.1f}")
    dates_and_language = (medians["language: detect_language"] + medians["dates: published_at"]
                          + medians["dates: dates_mentioned"])
    print(f"  {'dates + language (sum of medians)':45s} {dates_and_language:8.1f}")
    languages = Counter(normalise_story(s, settings).language for s in stories)
    print(f"  languages detected on Reuters: {languages.most_common(6)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="language,dates,cost")
    parser.add_argument("--langdetect-baseline", action="store_true",
                        help="also run langdetect's own detector (about 2 minutes)")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"data not found at {DATA}; set WIRESTREAM_DATA")
    parts = args.only.split(",")
    if "language" in parts:
        bench_language(args.langdetect_baseline)
    if "dates" in parts:
        bench_dates()
    if "cost" in parts:
        bench_cost()


if __name__ == "__main__":
    main()
