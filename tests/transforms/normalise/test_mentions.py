from datetime import date

import pytest

from wirestream.transforms.normalise.mentions import dates_mentioned

MONDAY = date(2024, 6, 24)


def resolved(text, today=MONDAY):
    return [(m["text"], m["date"]) for m in dates_mentioned(text, today)]


def test_seed_story_weekdays_and_month(shared_data):
    text = (shared_data / "seed" / "000_bf88e37bba94a288.txt").read_text(encoding="utf-8")
    assert dates_mentioned(text, MONDAY) == [
        {"text": "on Monday", "date": "2024-06-24", "granularity": "day"},
        {"text": "on Sunday", "date": "2024-06-23", "granularity": "day"},
        {"text": "Earlier this month", "date": "2024-06-01", "granularity": "month"},
    ]


@pytest.mark.parametrize("text, expected", [
    ("Peskov told reporters on Monday.", [("on Monday", "2024-06-24")]),
    ("The attack on Sunday killed four.", [("on Sunday", "2024-06-23")]),
    ("Talks ended on Tuesday.", [("on Tuesday", "2024-06-18")]),
    ("The vote was held last Monday.", [("last Monday", "2024-06-17")]),
    ("The board will meet on Friday.", [("on Friday", "2024-06-28")]),
    ("Ministers will meet on Monday.", [("on Monday", "2024-07-01")]),
    ("He said on Friday that he will go.", [("on Friday", "2024-06-21")]),
    ("Ministers meet next Wednesday.", [("next Wednesday", "2024-06-26")]),
    ("It happened yesterday; more rain is due tomorrow.",
     [("yesterday", "2024-06-23"), ("tomorrow", "2024-06-25")]),
    ("Prices rose last week and last month.", [("last week", "2024-06-17"), ("last month", "2024-05-01")]),
    ("Output fell last year.", [("last year", "2023-01-01")]),
    ("It opened three days ago, 2 weeks ago and two months ago.",
     [("three days ago", "2024-06-21"), ("2 weeks ago", "2024-06-10"), ("two months ago", "2024-04-01")]),
    ("No relative dates here, only 1987.", []),
])
def test_resolution(text, expected):
    assert resolved(text) == expected


def test_month_and_year_boundaries():
    assert resolved("It started last month.", date(2024, 1, 15)) == [("last month", "2023-12-01")]
    assert resolved("It ended on Sunday.", date(2024, 1, 1)) == [("on Sunday", "2023-12-31")]


def test_repeated_mentions_are_listed_once():
    assert resolved("On Monday he spoke. On Monday she replied.") == [("On Monday", "2024-06-24")]


@pytest.mark.parametrize("text", [
    "Talks ended on Sunday and resume next week; prices fell three days ago.",
    "on" + " " * 30 + "monday",  # a whitespace run too long for the search window
    "three" + " " * 10 + "months" + " " * 19 + "ago, and then on" + "\n" * 25 + "friday",
    "holiday yearly weekend mondays todays daylight 12 days ago",
    "earlier this\n\nmonth and late on\twednesday, yesterday, tonight",
    " " * 25 + "filler " * 30 + "on monday, and two  weeks ago",  # a long run far from every anchor
])
def test_mentions_found_near_anchors_are_the_full_scan(text):
    from wirestream.transforms.normalise.mentions import _MENTION, _mentions
    lowered = text.lower()
    assert [m.span() for m in _mentions(lowered)] == [m.span() for m in _MENTION.finditer(lowered)]


def test_a_long_whitespace_run_is_found_as_the_regex_finds_it():
    import random

    from wirestream.transforms.normalise.mentions import _LONG_SPACE, _has_long_space
    rng = random.Random(8)
    # Every ASCII whitespace character, others, and non-ASCII text (the regex's own path).
    alphabet = [" ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "a", "\x1b", "\xa0", "\u3000"]
    found = 0
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet[:8] if rng.random() < 0.9 else alphabet) * rng.randint(1, 8)
                       for _ in range(rng.randint(0, 12)))
        assert _has_long_space(text) == (_LONG_SPACE.search(text) is not None), repr(text)
        found += _has_long_space(text)
    assert 1000 < found < 19_000  # runs met both ways
    assert not _has_long_space("\x1b" * 30) and _has_long_space("a" + "\x1d" * 20)
