"""Tag stage: countries, places, people, organisations, topics and event types.

``tag_record`` is a plain function (wrap it with ``ApplyStage("tag", tag_record)``).
Gazetteers and rules are loaded on first use in each worker process and cached,
so the pickled DoFn holds only a reference to this function.
"""

from __future__ import annotations

from typing import Optional

from wirestream.schemas import EventRecord
from wirestream.transforms.tag.entities import people_and_organisations
from wirestream.transforms.tag.gazetteer import Entry, Gazetteer, load_gazetteer, tokens_of
from wirestream.transforms.tag.geo import (Dateline, Mention, country_evidence, country_of_place_label, parse_dateline,
                                resolve_dateline, salient_countries, usable_in_text)
from wirestream.transforms.tag.rules import event_types, load_rules, topics
from wirestream.transforms.tag.text import Tokens, is_shouted

__all__ = ["tag_record", "country_of_place_label"]


def _is_currency(tokens: Tokens, end: int, gaz: Gazetteer) -> bool:
    """'Canadian dlr bond', 'U.S. dollar': a currency, not a mention of the country."""
    return end < len(tokens) and tokens[end] is not None and tokens[end].lower() in gaz.currency_words


def _mentions(tokens: Tokens, gaz: Gazetteer, shouted: bool, in_headline: bool) -> list[Mention]:
    found = []
    for start, length, entries in gaz.names.scan(tokens):
        usable = [e for e in entries if usable_in_text(e, shouted)]
        if usable and usable[0].kind == "country" and _is_currency(tokens, start + length, gaz):
            continue
        if usable:
            found.append(Mention(" ".join(tokens[start:start + length]), start, length, usable, in_headline))
    return found


def _lower(tokens: Tokens) -> Tokens:
    return [t.lower() if t is not None else None for t in tokens]


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
    dateline, body = dateline_and_body(record)
    headline_shouted, body_shouted = is_shouted(record.headline), is_shouted(body)
    headline_tokens = tokens_of(record.headline, headline_shouted, gaz)
    body_tokens = tokens_of(body, body_shouted, gaz)
    segments = [(headline_tokens, _mentions(headline_tokens, gaz, headline_shouted, True), headline_shouted),
                (body_tokens, _mentions(body_tokens, gaz, body_shouted, False), body_shouted)]

    people, organisations, titled_spans = people_and_organisations(segments, gaz)
    mentions = [m for (_, found, _), spans in zip(segments, titled_spans) for m in found
                if m.start not in spans]
    dateline_entry: Optional[Entry] = None
    if dateline:
        named = {m.candidates[0].country for m in mentions if len(m.candidates) == 1}
        dateline_entry = resolve_dateline(dateline, gaz, named)
    evidence, places = country_evidence(mentions, dateline_entry, record.published_at,
                                        record.place_labels, gaz)
    countries = salient_countries(evidence, gaz)

    headline_lower, body_lower = _lower(headline_tokens), _lower(body_tokens)
    record.tags = {
        "countries": countries,
        "places": places,
        "people": people,
        "organisations": organisations,
        "topics": topics(record.subjects, headline_lower, body_lower, rules),
        "event_types": event_types((headline_lower, body_lower), rules),
    }
    return record
