"""Topics and event types from the source's subject codes and keyword rules (transforms/data)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Iterable, Optional

from wirestream.schemas import Subject
from wirestream.transforms.tag.gazetteer import read_data
from wirestream.transforms.tag.text import LOWER, MEMO_SIZE, Memo, PhraseIndex, Tokens, name_key

# IPTC subject codes and legacy Media Topic codes carry their top level in the first two digits.
_NUMERIC_CODE = re.compile(r"(?:^|[:/])(?P<top>0[1-9]|1[0-7])\d{6}$")


@dataclass
class Rules:
    topic_labels: dict[str, str] = field(default_factory=dict)
    topic_keywords: PhraseIndex[str] = field(default_factory=PhraseIndex)
    min_topic_hits: int = 2
    source_codes: dict[str, str] = field(default_factory=dict)
    source_prefixes: list[tuple[str, str]] = field(default_factory=list)
    event_types: dict[str, dict[str, str]] = field(default_factory=dict)
    event_phrases: PhraseIndex[str] = field(default_factory=PhraseIndex)
    # subject code -> topic_of_subject, remembered: codes repeat
    subject_topics: Memo[str, Optional[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.subject_topics = Memo(lambda code: topic_of_subject(Subject(code), self), MEMO_SIZE)


def _lower_key(phrase: str) -> tuple[str, ...]:
    return tuple(t.lower() for t in name_key(phrase))


@functools.cache
def load_rules(data_dir: Optional[str] = None) -> Rules:
    rules = Rules()
    topics = read_data("topics.json", data_dir)
    rules.min_topic_hits = topics["min_hits"]
    for code, spec in topics["topics"].items():
        rules.topic_labels[code] = spec["label"]
        for keyword in spec["keywords"]:
            rules.topic_keywords.add(_lower_key(keyword), code)
    for source, code in topics["source_codes"].items():
        if source.endswith(":*"):
            rules.source_prefixes.append((source[:-1], code))
        elif not source.startswith("_"):
            rules.source_codes[source] = code
    for name, spec in read_data("event_types.json", data_dir)["event_types"].items():
        rules.event_types[name] = {"code": spec["code"], "label": spec["label"]}
        for phrase in spec["phrases"]:
            rules.event_phrases.add(_lower_key(phrase), name)
    return rules


def topic_of_subject(subject: Subject, rules: Rules) -> Optional[str]:
    """The top-level Media Topic of a structured subject code, when it can be told offline."""
    code = subject.code.strip()
    if code.startswith("medtop:") and code in rules.topic_labels:
        return code
    if code in rules.source_codes:
        return rules.source_codes[code]
    for prefix, topic in rules.source_prefixes:
        if code.startswith(prefix):
            return topic
    m = _NUMERIC_CODE.search(code)
    return f"medtop:{m.group('top')}000000" if m else None


def topics_from_subjects(subjects: Iterable[Subject], rules: Rules) -> list[dict]:
    """The Media Topics the source's subjects map to: when there are any, the story's topics."""
    found: dict[str, None] = {}
    for subject in subjects:
        topic = rules.subject_topics[subject.code]
        if topic:
            found.setdefault(topic)
    return [{"code": c, "label": rules.topic_labels[c], "source": "subject"} for c in found]


def topics_from_keywords(headline: tuple[Tokens, list[int]], body: tuple[Tokens, list[int]], rules: Rules) -> list[dict]:
    """The topics from keywords, for a story whose subjects give none.
    headline, body: (tokens, the positions where a phrase may start); keywords match
    in lower case."""
    fold = LOWER.__getitem__
    in_headline = {code for _, _, codes in rules.topic_keywords.scan(*headline, fold) for code in codes}
    body_keywords: dict[str, set[tuple]] = {}
    tokens = body[0]
    for start, length, codes in rules.topic_keywords.scan(*body, fold):
        for code in codes:
            body_keywords.setdefault(code, set()).add(tuple(map(fold, tokens[start:start + length])))
    chosen = sorted(in_headline | {c for c, words in body_keywords.items() if len(words) >= rules.min_topic_hits},
                    key=lambda c: (-len(body_keywords.get(c, ())), c))
    return [{"code": c, "label": rules.topic_labels[c], "source": "keywords"} for c in chosen]


def event_types(segments: Iterable[tuple[Tokens, list[int]]], rules: Rules) -> list[dict]:
    """Each event type once, with the first phrase (in lower case) that evidenced it, in
    the data file's order. segments: (tokens, the positions where a phrase may start)."""
    evidence: dict[str, str] = {}
    fold = LOWER.__getitem__
    for tokens, starts in segments:
        for start, length, names in rules.event_phrases.scan(tokens, starts, fold):
            for name in names:
                evidence.setdefault(name, " ".join(map(fold, tokens[start:start + length])))
    return [{"type": name, "cameo": spec["code"], "label": spec["label"], "evidence": evidence[name]}
            for name, spec in rules.event_types.items() if name in evidence]
