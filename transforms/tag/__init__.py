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
from wirestream.transforms.tag.gazetteer import Entry, Gazetteer, country_of_place_label, load_gazetteer, tokens_of
from wirestream.transforms.tag.geo import (DATELINE_FIELDS, Dateline, Mention, country_evidence, parse_dateline,
                                           resolve_dateline, salient_countries)
from wirestream.transforms.tag.rules import event_types, load_rules, topics_from_keywords, topics_from_subjects
from wirestream.transforms.tag.text import MEMO_SIZE, Memo, Tokens, is_shouted

__all__ = ["tag_record", "country_of_place_label"]


def _is_currency(tokens: Tokens, end: int, gaz: Gazetteer) -> bool:
    """'Canadian dlr bond', 'U.S. dollar': a currency, not a mention of the country."""
    return end < len(tokens) and tokens[end] is not None and tokens[end].lower() in gaz.currency_words


def _mentions(tokens: Tokens, starts: list[int], gaz: Gazetteer, shouted: bool, in_headline: bool) -> list[Mention]:
    found = []
    for start, length, entries in gaz.names.scan(tokens, starts):
        usable = gaz.usable(entries, shouted)
        if not usable or usable[0].kind == "country" and _is_currency(tokens, start + length, gaz):
            continue
        text = tokens[start] if length == 1 else " ".join(tokens[start:start + length])
        found.append(Mention(text, start, length, usable, in_headline))
    return found


# What may start at a token, one bit per kind of phrase: gazetteer names, person titles
# and organisation designators as written, topic keywords and event phrases in lower case.
_NAME, _TITLE, _DESIGNATOR, _KEYWORD, _EVENT = 1, 2, 4, 8, 16


@functools.cache
def _phrase_kinds(data_dir: Optional[str]) -> Memo[Optional[str], int]:
    """token -> the bits of the kinds of phrase that may start at it."""
    gaz, rules = load_gazetteer(data_dir), load_rules(data_dir)
    names, titles = set(gaz.names.first_tokens()), set(gaz.person_titles.first_tokens())
    keywords, events = set(rules.topic_keywords.first_tokens()), set(rules.event_phrases.first_tokens())

    def kinds(token: Optional[str]) -> int:
        if token is None:
            return 0
        lower = token.lower()
        return ((token in names) * _NAME | (token in titles) * _TITLE | (token in gaz.org_designators) * _DESIGNATOR
                | (lower in keywords) * _KEYWORD | (lower in events) * _EVENT)
    return Memo(kinds, MEMO_SIZE)


# kinds -> 1 where the kind's bit is set, else 0, for bytes.translate: one per kind.
_HAS_KIND = {kind: bytes(bool(kinds & kind) for kinds in range(256)) for kind in (_NAME, _TITLE, _DESIGNATOR, _KEYWORD, _EVENT)}


class _Segment:
    """A text's tokens, the positions where some phrase may start and the kinds of phrase
    that may start at each (C-speed passes over the tokens, kinds as bytes), so that each
    tagger looks only at its few positions."""

    __slots__ = ("tokens", "shouted", "_starts", "_kinds")

    def __init__(self, text: str, shouted: bool, gaz: Gazetteer, phrase_kinds: Memo[Optional[str], int]) -> None:
        self.tokens = tokens = tokens_of(text, shouted, gaz)
        self.shouted = shouted
        kinds = bytes(map(phrase_kinds.__getitem__, tokens))
        self._starts = list(compress(count(), kinds))
        self._kinds = bytes(compress(kinds, kinds))

    def starts(self, kind: int) -> list[int]:
        """The positions where a phrase of this kind may start. Asked only by the
        taggers that run (titles and designators not in all-capitals text, keywords
        not when the subjects give the topics)."""
        return list(compress(self._starts, self._kinds.translate(_HAS_KIND[kind])))


def dateline_and_body(record: EventRecord) -> tuple[Optional[Dateline], str]:
    """The story's dateline and the text to read names in. Some formats give the
    dateline apart (Reuters SGML: the record's field), most lead the body with it.
    What a field holds beyond its dateline is story text: Reuters-21578 cuts the field
    at the first dash ("LONDON, March 16 - State-owned <BAA PLC> -"), and a field that
    does not read as a dateline ("Caracas, feb 26 -") still names places."""
    if record.dateline:
        dateline = DATELINE_FIELDS[record.dateline]
        rest = record.dateline[dateline.end:] if dateline else record.dateline
        return dateline, f"{rest} {record.body}" if rest else record.body
    dateline = parse_dateline(record.body)
    return dateline, record.body[dateline.end:] if dateline else record.body


def tag_record(record: EventRecord, data_dir: Optional[str] = None) -> EventRecord:
    """Fill ``record.tags`` from headline, body (with its dateline), the source's
    subject codes and the source's place labels. ``data_dir`` holds edited copies of
    any of the files in transforms/data (bind it with functools.partial for the stage)."""
    gaz, rules = load_gazetteer(data_dir), load_rules(data_dir)
    phrase_kinds = _phrase_kinds(data_dir)
    dateline, body = dateline_and_body(record)
    headline = _Segment(record.headline, is_shouted(record.headline), gaz, phrase_kinds)
    text = _Segment(body, is_shouted(body), gaz, phrase_kinds)
    segments = [(headline, _mentions(headline.tokens, headline.starts(_NAME), gaz, headline.shouted, True)),
                (text, _mentions(text.tokens, text.starts(_NAME), gaz, text.shouted, False))]

    people, organisations, titled_spans = people_and_organisations(
        [(s.tokens, s.starts(_TITLE) if not s.shouted else [], s.starts(_DESIGNATOR) if not s.shouted else [], found,
          s.shouted) for s, found in segments], gaz)
    mentions = [m for (_, found), spans in zip(segments, titled_spans) for m in found
                if m.start not in spans]
    dateline_entry: Optional[Entry] = None
    if dateline:
        named = {m.candidates[0].country for m in mentions if len(m.candidates) == 1}
        dateline_entry = resolve_dateline(dateline, gaz, named)
    evidence, places = country_evidence(mentions, dateline_entry, record.published_at,
                                        record.place_labels, gaz)
    countries = salient_countries(evidence, gaz)

    record.tags = {
        "countries": countries,
        "places": places,
        "people": people,
        "organisations": organisations,
        "topics": topics_from_subjects(record.subjects, rules) or topics_from_keywords(
            (headline.tokens, headline.starts(_KEYWORD)), (text.tokens, text.starts(_KEYWORD)), rules),
        "event_types": event_types(((headline.tokens, headline.starts(_EVENT)), (text.tokens, text.starts(_EVENT))), rules),
    }
    return record
