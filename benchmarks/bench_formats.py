"""Records users can trust, whatever form a story arrives in: real stories from
../shared/data rendered into every supported format and into real-world date
renderings, through the real parse -> normalise -> dedup -> tag functions.

    .venv/bin/python -m benchmarks.bench_formats [--stories N] [--skip-baseline]

Prints:
* format invariance: each story in every format (ninjs text and HTML bodies,
  agency JSON, NewsML-G2, RSS, Atom, Reuters SGML, plain text, an HTML page)
  against its agency-JSON form: headline, body, published_at, language, tags;
* times: published_at against the true time for every rendering (ISO 8601 with
  offsets, RFC 822 with zone names and offsets, epoch s/ms, naive local times,
  US style, day-first dotted and slashed, month names in fr/de/es/ru/it/pt, zone
  abbreviations); ambiguous day/month renderings silently wrong must be 0;
  dateparser's plain parse() on the same strings is the baseline;
* duplicates: the labelled evaluation of benchmarks/dedup_eval.py (copies with
  republisher edits, published 0-72 h apart, and hard negatives), each story
  rendered in a format and date rendering of its own, clustered by our batch
  path and by datasketch's MinHash LSH (128 permutations, word 5-gram shingles,
  thresholds 0.7 and 0.8).

The stories: Reuters-21578 (true time: its DATE, read as UTC as the corpus is)
and Lingua sentences joined into stories in fr, de, es, ru, it, pt (true times
drawn with a fixed seed). Everything is seeded: the same run prints the same figures.
"""

from __future__ import annotations

import argparse
import html
import json
import random
import re
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Optional
from zoneinfo import ZoneInfo

from benchmarks.bench_dedup import batch_clusters, pairs_by
from benchmarks.bench_normalise import join_into_stories
from benchmarks.datasets import data_dir
from benchmarks.dedup_data import reuters_date, reuters_rows
from benchmarks.dedup_eval import build as build_dedup_evaluation
from wirestream.schemas import DeadLetter, EventRecord, Origin, RawRecord, Story
from wirestream.transforms.dedup import record_uid
from wirestream.transforms.normalise import NormaliseSettings, normalise_story
from wirestream.schemas.times import parse_utc_iso, utc_iso
from wirestream.transforms.normalise.dates import ZONE_ABBREVIATIONS
from wirestream.transforms.normalise.text import strip_boilerplate
from wirestream.transforms.parse import parse_record
from wirestream.transforms.parse.html_page import MIN_ARTICLE_CHARS
from wirestream.transforms.parse.reuters import reuters_story
from wirestream.transforms.tag import tag_record

SEED = 13
LANGUAGES = ("fr", "de", "es", "ru", "it", "pt")
MONTHS = {
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember",
    "es": "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre",
    "ru": "января февраля марта апреля мая июня июля августа сентября октября ноября декабря",
    "it": "gennaio febbraio marzo aprile maggio giugno luglio agosto settembre ottobre novembre dicembre",
    "pt": "janeiro fevereiro março abril maio junho julho agosto setembro outubro novembro dezembro",
}
MONTHS = {lang: names.split() for lang, names in MONTHS.items()}
US_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
             "September", "October", "November", "December"]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
# Where each language's sources are, for local times written with a zone.
HOME_ZONE = {"fr": "Europe/Paris", "de": "Europe/Berlin", "es": "Europe/Madrid",
             "ru": "Europe/Moscow", "it": "Europe/Rome", "pt": "America/Sao_Paulo",
             "en": "Europe/London"}
ABBREVIATIONS = ["IST", "JST", "HKT", "SGT", "MSK", "CET", "EET", "PST", "AEST", "BRT"]
NEW_YORK = ZoneInfo("America/New_York")


# --- Date renderings ------------------------------------------------------------

@dataclass(frozen=True)
class Rendering:
    kind: str
    raw: str
    expected: datetime  # the true time at the rendering's precision
    source_zone: Optional[str] = None  # the --source-timezone the feed would be configured with
    ambiguous: bool = False  # slashed, and both numbers could be the month


def _offset_text(minutes: int, colon: bool = True) -> str:
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}{':' if colon else ''}{abs(minutes) % 60:02d}"


def _at(instant: datetime, minutes: int) -> datetime:
    return instant.astimezone(timezone(timedelta(minutes=minutes)))


def renderings(instant: datetime, language: str, rng: random.Random) -> list[Rendering]:
    """The true UTC `instant` written the ways feeds write it."""
    minute = instant.replace(second=0)
    out: list[Rendering] = []

    def add(kind, raw, expected=instant, **kw):
        out.append(Rendering(kind, raw, expected, **kw))

    home = ZoneInfo(HOME_ZONE[language])
    local = instant.astimezone(home)
    add("iso8601 Z", instant.strftime("%Y-%m-%dT%H:%M:%SZ"))
    add("iso8601 +offset", local.isoformat())
    add("iso8601 -offset", instant.astimezone(NEW_YORK).isoformat())
    gmt = instant
    add("rfc822 GMT", f"{DAYS[gmt.weekday()]}, {gmt:%d %b %Y %H:%M:%S} GMT")
    ny = instant.astimezone(NEW_YORK)
    add("rfc822 zone name", f"{DAYS[ny.weekday()]}, {ny:%d %b %Y %H:%M:%S} {ny.tzname()}")
    add("rfc822 offset", f"{DAYS[local.weekday()]}, {local:%d %b %Y %H:%M:%S} "
                         f"{_offset_text(int(local.utcoffset().total_seconds()) // 60, False)}")
    add("epoch seconds", str(int(instant.timestamp())))
    add("epoch milliseconds", str(int(instant.timestamp()) * 1000))
    add("naive local", local.strftime("%Y-%m-%d %H:%M:%S"), source_zone=HOME_ZONE[language])
    add("naive local (New York)", ny.strftime("%Y-%m-%dT%H:%M:%S"), source_zone="America/New_York")
    hour12 = ny.hour % 12 or 12
    add("US style", f"{US_MONTHS[ny.month - 1]} {ny.day}, {ny.year} {hour12}:{ny:%M} "
                    f"{'AM' if ny.hour < 12 else 'PM'} {ny.tzname()}", minute)
    ambiguous = local.day <= 12 and local.month <= 12 and local.day != local.month
    add("US numeric slashed", f"{ny:%m/%d/%Y} {hour12}:{ny:%M} {'AM' if ny.hour < 12 else 'PM'} "
                              f"{ny.tzname()}", minute,
        ambiguous=ny.day <= 12 and ny.month <= 12 and ny.day != ny.month)
    moscow = _at(instant, ZONE_ABBREVIATIONS["MSK"])
    add("day-first dotted", f"{moscow:%d.%m.%Y %H:%M} MSK", minute)
    add("day-first dotted, source zone", f"{local:%d.%m.%Y %H:%M}", minute,
        source_zone=HOME_ZONE[language])
    paris = instant.astimezone(ZoneInfo("Europe/Paris"))
    add("day-first slashed, zone", f"{paris:%d/%m/%Y %H:%M} {paris.tzname()}", minute,
        ambiguous=paris.day <= 12 and paris.month <= 12 and paris.day != paris.month)
    add("day-first slashed, source zone", f"{local:%d/%m/%Y %H:%M}", minute,
        source_zone=HOME_ZONE[language], ambiguous=ambiguous)
    for lang in ([language] if language != "en" else []) + [rng.choice(LANGUAGES)]:
        add(f"month name {lang}", month_name_rendering(instant, lang), minute)
    abbreviation = rng.choice(ABBREVIATIONS)
    there = _at(instant, ZONE_ABBREVIATIONS[abbreviation])
    add("zone abbreviation", f"{there:%d %b %Y %H:%M} {abbreviation}", minute)
    return out


def month_name_rendering(instant: datetime, lang: str) -> str:
    """A local time written as that language's sites write it."""
    if lang == "ru":
        t = _at(instant, ZONE_ABBREVIATIONS["MSK"])
        return f"{t.day} {MONTHS['ru'][t.month - 1]} {t.year} г., {t:%H:%M} MSK"
    if lang == "pt":
        t = _at(instant, ZONE_ABBREVIATIONS["BRT"])
        return f"{t.day} de {MONTHS['pt'][t.month - 1]} de {t.year} {t:%H:%M} BRT"
    t = instant.astimezone(ZoneInfo(HOME_ZONE[lang]))
    offset = int(t.utcoffset().total_seconds()) // 60
    name = MONTHS[lang][t.month - 1]
    if lang == "fr":
        return f"{t.day} {name} {t.year} {t:%H:%M} UTC{_offset_text(offset)}"
    if lang == "de":
        return f"{t.day}. {name} {t.year}, {t:%H:%M} Uhr {'MESZ' if offset == 120 else 'MEZ'}"
    if lang == "es":
        return f"{t.day} de {name} de {t.year} {t:%H:%M} {t.tzname()}"
    return f"{t.day} {name} {t.year} {t:%H:%M} {t.tzname()}"  # it: CET/CEST


# --- Stories and formats -----------------------------------------------------------

@dataclass
class SourceStory:
    key: str
    headline: str
    paragraphs: list[str]
    language: str  # the language tag its feed declares
    true_time: datetime
    story_id: str
    source: str = "Reuters"
    version: Optional[int] = None
    reuters_date: Optional[str] = None  # the corpus' own DATE
    group: str = ""
    edit: str = "original"


def reuters_stories(count: int, rng: random.Random) -> list[SourceStory]:
    rows = [r for r in reuters_rows() if r["text_type"] == "NORM" and r["title"]
            and len((r["body"] or "").split()) >= 60 and reuters_date(r["date_raw"])]
    stories = []
    for row in rng.sample(rows, count):
        parsed = reuters_story(newid=str(row["newid"]), date_raw=row["date_raw"], title=row["title"],
                               dateline="", body=row["body"], topics=[], places=[],
                               origin=Origin(kind="file", ingested_at="2000-01-01T00:00:00Z"))
        paragraphs = [p for p in strip_boilerplate(parsed.body)[0].split("\n\n") if p]
        stories.append(SourceStory(
            f"reuters:{row['newid']}", parsed.headline, paragraphs, "en",
            parse_utc_iso(reuters_date(row["date_raw"]).replace("Z", "+00:00")),
            f"reuters21578:{row['newid']}", reuters_date=row["date_raw"]))
    return stories


def lingua_stories(per_language: int, rng: random.Random) -> list[SourceStory]:
    by_language = defaultdict(list)
    with (data_dir() / "lingua_langid_sentences" / "sentences.jsonl").open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["lang"] in LANGUAGES:
                by_language[row["lang"]].append(row["text"])
    stories = []
    start = datetime(2023, 1, 1, tzinfo=timezone.utc)
    for lang in LANGUAGES:
        sentences = by_language[lang]
        for index in range(per_language):
            chunk = sentences[index * 12:(index + 1) * 12]
            headline, body = chunk[0].rstrip("."), join_into_stories(chunk[1:])
            if not body:
                continue
            instant = start + timedelta(seconds=rng.randrange(2 * 365 * 86400))
            stories.append(SourceStory(f"lingua:{lang}:{index}", headline[:150], body, lang,
                                       instant, f"lingua-{lang}-{index}", source=f"wire-{lang}"))
    return stories


def _xml(text: str) -> str:
    return html.escape(text, quote=True)


def _html_paragraphs(paragraphs: list[str]) -> str:
    return "".join(f"<p>{html.escape(p, quote=False)}</p>" for p in paragraphs)


FORMATS: dict[str, Callable[[SourceStory, str], tuple[bytes, str]]] = {}


def format_renderer(name: str):
    def register(fn):
        FORMATS[name] = fn
        return fn
    return register


@format_renderer("json")
def render_json(s: SourceStory, published: str) -> tuple[bytes, str]:
    doc = {"id": s.story_id, "headline": s.headline, "body": "\n\n".join(s.paragraphs),
           "published": published, "lang": s.language, "source": s.source}
    if s.version is not None:
        doc["version"] = s.version
    return json.dumps(doc, ensure_ascii=False).encode(), "json"


@format_renderer("ninjs body_text")
def render_ninjs(s: SourceStory, published: str) -> tuple[bytes, str]:
    doc = {"uri": s.story_id, "headline": s.headline, "body_text": "\n\n".join(s.paragraphs),
           "firstcreated": published, "language": s.language, "copyrightholder": s.source}
    if s.version is not None:
        doc["version"] = str(s.version)
    return json.dumps(doc, ensure_ascii=False).encode(), "json"


@format_renderer("ninjs body_html")
def render_ninjs_html(s: SourceStory, published: str) -> tuple[bytes, str]:
    doc = {"uri": s.story_id, "headlines": [{"role": "main", "value": s.headline}],
           "bodies": [{"role": "main", "contenttype": "text/html",
                       "value": _html_paragraphs(s.paragraphs)}],
           "firstcreated": published, "language": s.language, "copyrightholder": s.source}
    if s.version is not None:
        doc["version"] = str(s.version)
    return json.dumps(doc, ensure_ascii=False).encode(), "json"


@format_renderer("newsml-g2")
def render_newsml(s: SourceStory, published: str) -> tuple[bytes, str]:
    version = f' version="{s.version}"' if s.version is not None else ""
    doc = (f'<?xml version="1.0" encoding="UTF-8"?><newsItem xmlns="http://iptc.org/std/nar/2006-10-01/"'
           f' guid="{_xml(s.story_id)}"{version}><itemMeta><itemClass qcode="ninat:text"/>'
           f'<provider><name>{_xml(s.source)}</name></provider>'
           f'<firstCreated>{_xml(published)}</firstCreated></itemMeta>'
           f'<contentMeta><headline>{_xml(s.headline)}</headline><language tag="{s.language}"/>'
           f'</contentMeta><contentSet><inlineXML contenttype="application/xhtml+xml">'
           f'<html xmlns="http://www.w3.org/1999/xhtml"><body>{_html_paragraphs(s.paragraphs)}'
           f'</body></html></inlineXML></contentSet></newsItem>')
    return doc.encode(), "xml"


@format_renderer("rss")
def render_rss(s: SourceStory, published: str) -> tuple[bytes, str]:
    doc = (f'<?xml version="1.0"?><rss version="2.0"><channel><title>{_xml(s.source)}</title>'
           f'<language>{s.language}</language><item><title>{_xml(s.headline)}</title>'
           f'<guid>{_xml(s.story_id)}</guid><pubDate>{_xml(published)}</pubDate>'
           f'<description>{_xml(_html_paragraphs(s.paragraphs))}</description></item>'
           f'</channel></rss>')
    return doc.encode(), "xml"


@format_renderer("atom")
def render_atom(s: SourceStory, published: str) -> tuple[bytes, str]:
    doc = (f'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="{s.language}">'
           f'<title>{_xml(s.source)}</title><entry><id>{_xml(s.story_id)}</id>'
           f'<title type="text">{_xml(s.headline)}</title><published>{_xml(published)}</published>'
           f'<content type="text">{_xml(chr(10).join(["", *[p + chr(10) for p in s.paragraphs]]))}'
           f'</content></entry></feed>')
    return doc.encode(), "xml"


@format_renderer("reuters-sgml")
def render_sgml(s: SourceStory, published: str) -> tuple[bytes, str]:
    body = "\n    ".join(_xml(p) for p in s.paragraphs)
    newid = s.story_id.rsplit(":", 1)[-1]
    doc = (f'<REUTERS NEWID="{newid}"><DATE>{published}</DATE><TOPICS></TOPICS><PLACES></PLACES>'
           f'<TEXT><TITLE>{_xml(s.headline)}</TITLE><BODY>{body}\n Reuter\n</BODY></TEXT></REUTERS>')
    return doc.encode(), "sgm"


@format_renderer("plain text")
def render_text(s: SourceStory, published: str) -> tuple[bytes, str]:
    # A scraped page flattened to text carries no time: the file's time stands in for it.
    return "\n\n".join([s.headline, *s.paragraphs]).encode(), "txt"


@format_renderer("html page")
def render_html(s: SourceStory, published: str) -> tuple[bytes, str]:
    title = html.escape(s.headline)
    doc = (f'<!DOCTYPE html><html lang="{s.language}"><head><meta charset="utf-8">'
           f'<title>{title} | {html.escape(s.source)}</title>'
           f'<meta property="og:title" content="{title}">'
           f'<meta property="og:site_name" content="{html.escape(s.source)}">'
           f'<meta property="article:published_time" content="{html.escape(published)}">'
           f'<link rel="canonical" href="https://news.example/{html.escape(s.story_id)}"></head>'
           f'<body><nav><a href="/">Home</a> <a href="/world">World</a> <a href="/markets">Markets</a>'
           f'</nav><main><article><h1>{title}</h1>{_html_paragraphs(s.paragraphs)}</article></main>'
           f'<aside><h2>Related</h2><ul><li><a href="/x">Markets close mixed in quiet trade</a></li>'
           f'</ul></aside><footer><p>Copyright the publisher. All rights reserved.</p></footer>'
           f'</body></html>')
    return doc.encode(), "html"


# --- Through the pipeline's own functions ---------------------------------------------

def pipeline_record(payload: bytes, hint: str, reference: datetime, source_zone: Optional[str],
                    source: str, tagged: bool = True) -> tuple[Optional[EventRecord], Optional[str]]:
    """(event record, None) or (None, the dead letter's reason)."""
    origin = Origin(kind="file", ingested_at=utc_iso(reference), path=f"story.{hint}")
    outputs = list(parse_record(RawRecord(payload, origin, hint)))
    if len(outputs) != 1 or isinstance(outputs[0], DeadLetter):
        return None, "; ".join(o.error for o in outputs if isinstance(o, DeadLetter)) or "no output"
    story: Story = outputs[0]
    zones = {story.source or source: source_zone} if source_zone else {}
    record = normalise_story(story, NormaliseSettings(source_timezones=zones))
    return (tag_record(record) if tagged else record), None


# --- Format invariance ---------------------------------------------------------------

COMPARED = ("headline", "body", "published_at", "language", "tags")


def invariance(stories: list[SourceStory]) -> None:
    print("\n== Format invariance: each story in every format against its agency-JSON form")
    agree, total, examples = Counter(), Counter(), defaultdict(list)
    for s in stories:
        iso = s.true_time.astimezone(ZoneInfo(HOME_ZONE[s.language])).isoformat()
        reference_record, _ = pipeline_record(*render_json(s, iso), s.true_time, None, s.source)
        for name in formats_for(s):
            render = FORMATS[name]
            published = s.reuters_date if name == "reuters-sgml" else iso
            record, dead = pipeline_record(*render(s, published), s.true_time, None, s.source)
            total[name] += 1
            if record is None:
                examples[name].append(f"{s.key}: dead letter: {dead}")
                continue
            differ = [f for f in COMPARED if getattr(record, f) != getattr(reference_record, f)]
            if not differ:
                agree[name] += 1
            else:
                f = differ[0]
                examples[name].append(f"{s.key}: {f}: {str(getattr(record, f))[:90]!r} vs "
                                      f"{str(getattr(reference_record, f))[:90]!r}")
    print(f"{'format':<18} {'same on all five fields':>24}")
    for name in FORMATS:
        print(f"{name:<18} {agree[name]:>6,}/{total[name]:<6,} {agree[name] / total[name]:>8.2%}")
        for example in examples[name][:3]:
            print(f"    {example}")
    print("(the plain-text form carries no time: its file time, set to the true time, stands in;"
          " Reuters SGML carries the corpus' own DATE; stories under "
          f"{MIN_ARTICLE_CHARS} characters have no HTML page form)")


# --- Times -----------------------------------------------------------------------------

def times(stories: list[SourceStory], rng: random.Random, baseline: bool) -> None:
    print("\n== Times: published_at against the true time, every rendering through agency JSON")
    by_kind, right_by_kind = Counter(), Counter()
    right = silent_wrong = flagged_wrong = null = ambiguous = ambiguous_silent = 0
    base_right, base_total = 0, 0
    examples = []
    cases = []
    for s in stories:
        for r in renderings(s.true_time, s.language, rng):
            cases.append((s, r))
    for s, r in cases:
        reference = s.true_time + timedelta(hours=2)
        record, dead = pipeline_record(*render_json(s, r.raw), reference, r.source_zone, s.source,
                                       tagged=False)
        value = record.published_at if record else None
        notes = [q for q in (record.quality if record else []) if q.startswith("published_at")]
        by_kind[r.kind] += 1
        ok = value == utc_iso(r.expected)
        if ok:
            right += 1
            right_by_kind[r.kind] += 1
        elif value is None:
            null += 1
        elif notes:
            flagged_wrong += 1
        else:
            silent_wrong += 1
            examples.append(f"{r.kind}: {r.raw!r} -> {value}, true {utc_iso(r.expected)}")
        if r.ambiguous:
            ambiguous += 1
            if not ok and value is not None and not any("cannot be told apart" in q for q in notes):
                ambiguous_silent += 1
        if baseline:
            base_total += 1
            base_right += dateparser_plain(r) == utc_iso(r.expected)
    n = len(cases)
    print(f"{n:,} renderings of {len(stories):,} stories: right {right:,} ({right / n:.2%}); "
          f"null {null:,}; wrong with a quality note {flagged_wrong:,}; silently wrong {silent_wrong:,}")
    print(f"ambiguous day/month renderings: {ambiguous:,}; silently wrong among them: {ambiguous_silent}")
    print(f"{'rendering':<32} {'ours':>8}" + (f" {'dateparser.parse':>17}" if baseline else ""))
    base_by_kind = Counter()
    if baseline:
        for s, r in cases:
            base_by_kind[r.kind] += dateparser_plain(r) == utc_iso(r.expected)
    for kind in by_kind:
        line = f"{kind:<32} {right_by_kind[kind] / by_kind[kind]:>8.2%}"
        if baseline:
            line += f" {base_by_kind[kind] / by_kind[kind]:>17.2%}"
        print(line)
    if baseline:
        print(f"{'all':<32} {right / n:>8.2%} {base_right / base_total:>17.2%}   "
              "(dateparser.parse(raw), no settings; a naive result read in the rendering's "
              "source zone, else UTC)")
    for example in examples[:8]:
        print(f"    silently wrong: {example}")


_PLAIN_CACHE: dict[tuple, Optional[str]] = {}


def dateparser_plain(r: Rendering) -> Optional[str]:
    key = (r.raw, r.source_zone)
    if key not in _PLAIN_CACHE:
        import dateparser
        try:
            value = dateparser.parse(r.raw)
        except Exception:  # the baseline's own failures count as misses
            value = None
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=ZoneInfo(r.source_zone or "UTC"))
        _PLAIN_CACHE[key] = utc_iso(value) if value is not None else None
    return _PLAIN_CACHE[key]


# --- Duplicates --------------------------------------------------------------------------

# Formats that carry a story id and version: an update (version 2, a CORRECTED reissue)
# and the story it updates are linked by them.
_ID_FORMATS = ("json", "ninjs body_text", "ninjs body_html", "newsml-g2")


def formats_for(s: SourceStory, updates: bool = False) -> list[str]:
    """The formats a story can be rendered in. A page with under MIN_ARTICLE_CHARS
    of text is taken as no article (a caption, a teaser), so short stories are
    not rendered as HTML pages; only Reuters stories have an SGML form."""
    if updates:
        return list(_ID_FORMATS)
    short = len("\n".join(s.paragraphs)) < MIN_ARTICLE_CHARS
    return [n for n in FORMATS if not (n == "reuters-sgml" and not s.reuters_date)
            and not (n == "html page" and short)]
_DUP_KINDS = ("iso8601 +offset", "rfc822 zone name", "epoch seconds", "US style",
              "day-first dotted", "day-first slashed, zone", "month name fr", "zone abbreviation",
              "naive local (New York)", "rfc822 GMT")


def duplicates(rng: random.Random) -> None:
    print("\n== Duplicates: the labelled dedup evaluation, each story in its own format and "
          "date rendering")
    evaluation = build_dedup_evaluation()
    updated = {item.expected_update_of for item in evaluation.stories if item.expected_update_of}
    records, groups, null_times, formats_used = [], [], 0, Counter()
    dead = []
    for index, item in enumerate(evaluation.stories):
        r = item.record
        truth = parse_utc_iso(r.published_at)
        s = SourceStory(f"eval:{index}", r.headline, [p for p in r.body.split("\n\n") if p], "en",
                        truth, r.story_id, source=r.source or "reuters", version=r.version)
        name = rng.choice(formats_for(s, updates=bool(
            r.version or item.expected_update_of or r.event_id in updated)))
        candidates = [x for x in renderings(truth, "en", rng) if x.kind in _DUP_KINDS]
        rendering = rng.choice(candidates)
        formats_used[name] += 1
        reference = truth + timedelta(hours=2) if name != "plain text" else truth
        record, reason = pipeline_record(*FORMATS[name](s, rendering.raw), reference,
                                         rendering.source_zone, s.source, tagged=False)
        if record is None:
            dead.append(f"{name}: {reason}")
            continue
        null_times += record.published_at is None
        records.append(record)
        groups.append(item.group)
    print(f"{len(records):,} stories ({len(dead)} dead letters) in {len(formats_used)} formats "
          f"({', '.join(f'{k} {v}' for k, v in sorted(formats_used.items()))}); "
          f"null published_at: {null_times}")
    for reason in dead[:3]:
        print(f"    dead letter: {reason}")
    truth_pairs = pairs_by(range(len(records)), lambda i: groups[i])
    print(f"duplicate pairs: {len(truth_pairs):,}")
    print(f"{'method':<40} {'precision':>9} {'recall':>8} {'pairs found':>12} {'seconds':>8}")
    started = time.process_time()
    ours = our_clusters(records)
    report_pairs("wirestream (batch clustering, 0.8)", ours, truth_pairs, started)
    for threshold in (0.7, 0.8):
        started = time.process_time()
        report_pairs(f"datasketch MinHashLSH {threshold}", lsh_clusters(records, threshold),
                     truth_pairs, started)


def our_clusters(records: list[EventRecord]) -> list[str]:
    """The one call into the dedup stage: its public batch clustering."""
    clusters = batch_clusters(records)
    return [clusters[record_uid(r)][0] for r in records]


def lsh_clusters(records: list[EventRecord], threshold: float) -> list[int]:
    """What a user reaching for datasketch would write: MinHash (128 permutations)
    of each body's word 5-gram shingles, an LSH index at the threshold, and the
    matches it returns joined into clusters."""
    from datasketch import MinHash, MinHashLSH
    lsh = MinHashLSH(threshold=threshold, num_perm=128)
    hashes = []
    for index, record in enumerate(records):
        words = re.findall(r"\w+", (record.body or record.headline).lower())
        shingles = {" ".join(words[i:i + 5]) for i in range(max(1, len(words) - 4))}
        m = MinHash(num_perm=128, seed=1)
        m.update_batch(s.encode("utf-8") for s in shingles)
        lsh.insert(str(index), m)
        hashes.append(m)
    parent = list(range(len(records)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for index, m in enumerate(hashes):
        for match in lsh.query(m):
            a, b = find(index), find(int(match))
            if a != b:
                parent[max(a, b)] = min(a, b)
    return [find(i) for i in range(len(records))]


def report_pairs(name: str, clusters: list, truth: set, started: float) -> None:
    found = pairs_by(range(len(clusters)), lambda i: clusters[i])
    tp = len(found & truth)
    precision = tp / len(found) if found else 1.0
    print(f"{name:<40} {precision:>9.4f} {tp / len(truth):>8.4f} {len(found):>12,} "
          f"{time.process_time() - started:>8.1f}")


def html_pages() -> None:
    """The 17 real pages of ../shared/data/html_news_pages: what becomes of each,
    and what parsing a page costs (their expectations are in the tests)."""
    print("\n== Real article pages (html_news_pages): parse + normalise, median of 5 runs per page")
    outcomes, costs = Counter(), []
    for path in sorted((data_dir() / "html_news_pages").glob("*.html")):
        payload = path.read_bytes()
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            record, dead = pipeline_record(payload, "html", datetime(2026, 1, 1, tzinfo=timezone.utc),
                                           None, "page", tagged=False)
            runs.append(time.perf_counter() - started)
        costs.append(sorted(runs)[2])
        outcomes["story" if record else f"dead letter: {dead.split(':')[0]}"] += 1
        if record and not any(q.startswith("published_at: date only") for q in record.quality):
            outcomes["with a full publication time"] += 1
    costs.sort()
    print(", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())) +
          f"; {costs[len(costs) // 2] * 1000:.0f} ms per page median, {costs[-1] * 1000:.0f} ms the "
          f"largest ({max(p.stat().st_size for p in (data_dir() / 'html_news_pages').glob('*.html')) // 1024} KiB)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stories", type=int, default=200, help="Reuters stories (default 200)")
    parser.add_argument("--per-language", type=int, default=40,
                        help="Lingua stories per language (default 40)")
    parser.add_argument("--skip-baseline", action="store_true", help="no dateparser.parse baseline")
    parser.add_argument("--skip-duplicates", action="store_true")
    args = parser.parse_args(argv)
    rng = random.Random(SEED)
    stories = reuters_stories(args.stories, rng) + lingua_stories(args.per_language, rng)
    print(f"{len(stories):,} stories: {args.stories} Reuters-21578, "
          f"{len(stories) - args.stories} Lingua in {', '.join(LANGUAGES)}")
    started = time.time()
    html_pages()
    invariance(stories)
    times(stories, random.Random(SEED), baseline=not args.skip_baseline)
    if not args.skip_duplicates:
        duplicates(random.Random(SEED))
    print(f"\n{time.time() - started:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
