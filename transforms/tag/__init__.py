"""Tag stage: countries, places, people, organisations, topics and event types.

``tag_record`` is a plain function (wrap it with ``ApplyStage("tag", tag_record)``).
Gazetteers and rules are loaded on first use in each worker process and cached,
so the pickled DoFn holds only a reference to this function.
"""

from __future__ import annotations

import functools
from itertools import compress, count
from typing import Optional

from wirestream.schemas import EventRecord
from wirestream.transforms.tag.entities import people_and_organisations
from wirestream.transforms.tag.gazetteer import Entry, Gazetteer, load_gazetteer, tokens_of
from wirestream.transforms.tag.geo import (Dateline, Mention, country_evidence, country_of_place_label, parse_dateline,
                                resolve_dateline, salient_countries, usable_in_text)
from wirestream.transforms.tag.rules import event_types, load_rules, topics
from wirestream.transforms.tag.text import MEMO_SIZE, Memo, Tokens, is_shouted

__all__ = ["tag_record", "country_of_place_label"]


def _is_currency(tokens: Tokens, end: int, gaz: Gazetteer) -> bool:
    """'Canadian dlr bond', 'U.S. dollar': a currency, not a mention of the country."""
    return end < len(tokens) and tokens[end] is not None and tokens[end].lower() in gaz.currency_words


def _mentions(tokens: Tokens, starts: list[int], gaz: Gazetteer, shouted: bool, in_headline: bool) -> list[Mention]:
    found = []
    for start, length, entries in gaz.names.scan(tokens, starts):
        usable = [e for e in entries if usable_in_text(e, shouted)]
        if usable and usable[0].kind == "country" and _is_currency(tokens, start + length, gaz):
            continue
        if usable:
            found.append(Mention(" ".join(tokens[start:start + length]), start, length, usable, in_headline))
    return found


@functools.cache
def _may_start_phrase(data_dir: Optional[str]) -> Memo[Optional[str], bool]:
    """token -> whether a phrase of any tagger may start at it: gazetteer names, titles
    and designators as written, keywords and event phrases in lower case. One C-speed
    pass over a text's tokens with it leaves the few positions every scan looks at."""
    gaz, rules = load_gazetteer(data_dir), load_rules(data_dir)
    as_written = {*gaz.names.first_tokens(), *gaz.person_titles.first_tokens(), *gaz.org_designators}
    lowered = {*rules.topic_keywords.first_tokens(), *rules.event_phrases.first_tokens()}
    return Memo(lambda t: t is not None and (t in as_written or t.lower() in lowered), MEMO_SIZE)


def dateline_and_body(record: EventRecord) -> tuple[Optional[Dateline], str]:
    """The story's dateline and the text to read names in. Some formats give the
    dateline apart (Reuters SGML: the record's field), most lead the body with it.
    What a field holds beyond its dateline is story text: Reuters-21578 cuts the field
    at the first dash ("LONDON, March 16 - State-owned <BAA PLC> -"), and a field that
    does not read as a dateline ("Caracas, feb 26 -") still names places."""
    if record.dateline:
        dateline = parse_dateline(record.dateline)
        rest = record.dateline[dateline.end:] if dateline else record.dateline
        return dateline, f"{rest} {record.body}" if rest else record.body
    dateline = parse_dateline(record.body)
    return dateline, record.body[dateline.end:] if dateline else record.body


def tag_record(record: EventRecord, data_dir: Optional[str] = None) -> EventRecord:
    """Fill ``record.tags`` from headline, body (with its dateline), the source's
    subject codes and the source's place labels. ``data_dir`` holds edited copies of
    any of the files in transforms/data (bind it with functools.partial for the stage)."""
    gaz, rules = load_gazetteer(data_dir), load_rules(data_dir)
    may_start = _may_start_phrase(data_dir).__getitem__
    dateline, body = dateline_and_body(record)
    headline_shouted, body_shouted = is_shouted(record.headline), is_shouted(body)
    headline_tokens = tokens_of(record.headline, headline_shouted, gaz)
    body_tokens = tokens_of(body, body_shouted, gaz)
    headline_starts = list(compress(count(), map(may_start, headline_tokens)))
    body_starts = list(compress(count(), map(may_start, body_tokens)))
    segments = [(headline_tokens, headline_starts,
                 _mentions(headline_tokens, headline_starts, gaz, headline_shouted, True), headline_shouted),
                (body_tokens, body_starts, _mentions(body_tokens, body_starts, gaz, body_shouted, False), body_shouted)]

    people, organisations, titled_spans = people_and_organisations(segments, gaz)
    mentions = [m for (_, _, found, _), spans in zip(segments, titled_spans) for m in found
                if m.start not in spans]
    dateline_entry: Optional[Entry] = None
    if dateline:
        named = {m.candidates[0].country for m in mentions if len(m.candidates) == 1}
        dateline_entry = resolve_dateline(dateline, gaz, named)
    evidence, places = country_evidence(mentions, dateline_entry, record.published_at,
                                        record.place_labels, gaz)
    countries = salient_countries(evidence, gaz)

    headline, body_segment = (headline_tokens, headline_starts), (body_tokens, body_starts)
    record.tags = {
        "countries": countries,
        "places": places,
        "people": people,
        "organisations": organisations,
        "topics": topics(record.subjects, headline, body_segment, rules),
        "event_types": event_types((headline, body_segment), rules),
    }
    return record
