"""Publication times from any form seen on the wire, to UTC.

Strict parsers for the common machine formats (epoch, ISO 8601, RFC 822,
Reuters, numeric day/month dates) run first and cost microseconds;
dateparser, which costs a millisecond or more, only sees what they reject,
restricted to the story's language and cached. Naive times are read in the
source's zone. Relative
expressions ("2 hours ago", "vor 2 Stunden") resolve against the record's own
reference time (Kafka record timestamp or archive ingest time), never the
wall clock, so a replay gives the same answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Optional
from zoneinfo import ZoneInfo

from dateparser.data import language_order as _DATEPARSER_LANGUAGES
from dateparser.date import DateDataParser

from wirestream.schemas.times import utc_iso

# Offsets in minutes of the zone abbreviations seen in wire datelines and feeds.
# Ambiguous ones are read the way news feeds use them most: IST is India
# (+05:30, not Irish or Israel), CST is US Central (not China), BST is British
# Summer Time (not Bangladesh), AST is Atlantic (not Arabia), GST is Gulf.
ZONE_ABBREVIATIONS = {
    "UT": 0, "UTC": 0, "GMT": 0, "Z": 0, "WET": 0, "WEST": 60, "BST": 60, "IST": 330,
    "CET": 60, "CEST": 120, "MET": 60, "MEST": 120, "WAT": 60, "EET": 120, "EEST": 180,
    "CAT": 120, "SAST": 120, "EAT": 180, "MSK": 180, "MSD": 240, "TRT": 180, "GST": 240,
    "PKT": 300, "NPT": 345, "ICT": 420, "WIB": 420, "HKT": 480, "SGT": 480, "PHT": 480,
    "AWST": 480, "JST": 540, "KST": 540, "ACST": 570, "AEST": 600, "AEDT": 660,
    "NZST": 720, "NZDT": 780, "HST": -600, "AKST": -540, "AKDT": -480, "PST": -480,
    "PDT": -420, "MST": -420, "MDT": -360, "CST": -360, "CDT": -300, "EST": -300,
    "EDT": -240, "AST": -240, "ADT": -180, "NST": -210, "NDT": -150, "BRT": -180,
    "ART": -180, "MEZ": 60, "MESZ": 120,  # German: Mitteleuropäische (Sommer)zeit
}
_ZONE_ABBREVIATION = "|".join(sorted(ZONE_ABBREVIATIONS, key=len, reverse=True))
_ZONE_ABBREVIATION_WORD = re.compile(rf"(?<![A-Za-z])({_ZONE_ABBREVIATION})(?![A-Za-z])")
# "UTC+01:00", "GMT+1", "GMT -0500": an offset written after the name of UTC.
_UTC_PLUS_OFFSET = re.compile(r"(?<![A-Za-z])(?:UTC|GMT) ?([+-])(\d{1,2})(?::?(\d{2}))?(?![\d:])")
# A zone as written after a time: an offset, UTC+offset, or an abbreviation.
_ZONE = (r"(?:UTC|GMT) ?[+-]\d{1,2}(?::?\d{2})?|[+-]\d{2}:?\d{2}|" + _ZONE_ABBREVIATION)
# Zone abbreviations only the US (and its territories) use: a numeric date
# written beside them is month-first.
US_ZONE_ABBREVIATIONS = frozenset(
    {"EST", "EDT", "CST", "CDT", "MST", "MDT", "PST", "PDT", "AKST", "AKDT", "HST"})
# Regions that write numeric dates month first (CLDR short date patterns).
MONTH_FIRST_REGIONS = frozenset({"US", "PH", "FM", "MH", "PW", "AS", "GU", "MP", "PR", "UM", "VI"})

_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)}

# SGML control-character entities (&#5; ...) and raw control characters: the
# Reuters corpus has them glued to its DATE fields.
_CONTROL_JUNK = re.compile(r"&#(?:[0-9]|[12][0-9]|3[01]|127);|[\x00-\x08\x0b-\x1f\x7f]")
_SPACES = re.compile(r"\s+")

_EPOCH = re.compile(r"(\d{9,10}|\d{12,13})(?:\.(\d+))?")
# Reuters-21578: " 5-MAR-1987 09:15:05.40", then category letters after the
# control junk ("... 00:03:35.68 F", "... 14:12:01.00 C G T M"), or an
# annotator's comment ("... 00:00:00.00 # date added by S Finch as guesswork").
_REUTERS = re.compile(
    r"(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{1,3}):(\d{2}):(\d{2})(?:\.\d{1,2})?(?: [A-Z]{1,3})*"
    r"(?: ?# ?(?P<comment>.*))?")
_ISO_START = re.compile(r"\d{4}-?\d{2}-?\d{2}")
_RFC822 = re.compile(
    r"(?:[A-Za-z]{3,9},? )?(\d{1,2}) ([A-Za-z]{3})[a-z]*\.? (\d{4}|\d{2}) "
    r"(\d{1,2}):(\d{2})(?::(\d{2}))?(?: ?([+-]\d{2}:?\d{2}|" + _ZONE_ABBREVIATION + r"))?")


# 10.06.2024, 10/06/2024, 3-2-87, then an optional time ("11:15", "9.51 Uhr",
# "9:51 AM", "14h05") and zone.
_NUMERIC_DATE = re.compile(
    r"(\d{1,2})([./-])(\d{1,2})\2(\d{4}|\d{2})"
    r"(?:,? ?(?:T|um|à|a las|alle|às|в)? ?(\d{1,2})[:.h](\d{2})(?:[:.](\d{2}))?(?:\.\d+)?"
    r"(?: ?([AaPp])\.?[Mm]\.?)?(?: ?(?:Uhr|h))?)?"
    r"(?: ?(" + _ZONE + r"))?")


@dataclass(frozen=True)
class DayMonthOrder:
    """How a slashed numeric date whose first two numbers are both 12 or less
    is read, and why: US sources write the month first, most others the day."""
    month_first: bool
    reason: str

    @property
    def reading(self) -> str:
        return "month first" if self.month_first else "day first"


# Zones whose sources write numeric dates month first (the US and its territories, the Philippines).
_MONTH_FIRST_ZONE_PREFIXES = ("US/", "America/New_York", "America/Chicago", "America/Denver",
                              "America/Los_Angeles", "America/Phoenix", "America/Anchorage",
                              "America/Detroit", "America/Boise", "America/Juneau",
                              "America/Indiana/", "America/Kentucky/", "America/North_Dakota/",
                              "America/Puerto_Rico", "Pacific/Honolulu", "Asia/Manila")


def record_day_month_order(source_zone: Optional[str] = None, region: Optional[str] = None,
                           language: Optional[str] = None) -> Optional[DayMonthOrder]:
    """What the record itself says about the order of day and month: the zone
    configured for its source (--source-timezone), else the region of its
    declared language (en-US), else a declared language other than English
    (those write the day first). None when it says nothing."""
    if source_zone and source_zone != "UTC":
        month_first = source_zone.startswith(_MONTH_FIRST_ZONE_PREFIXES)
        return DayMonthOrder(month_first, f"source zone {source_zone}")
    if region and len(region) == 2 and region.isalpha():
        return DayMonthOrder(region.upper() in MONTH_FIRST_REGIONS, f"declared region {region.upper()}")
    if language and language != "en":
        return DayMonthOrder(False, f"declared language {language}")
    return None


# With no evidence at all: most of the world's sources write the day first.
DEFAULT_DAY_MONTH_ORDER = DayMonthOrder(False, "no sign of a US source")


@dataclass(frozen=True)
class ParsedTime:
    instant: datetime  # timezone-aware, UTC
    date_only: bool = False  # the source gave a day but no (usable) time
    note: Optional[str] = None  # how an odd source value was read


@lru_cache(maxsize=256)
def zone_named(name: str) -> tzinfo:
    return ZoneInfo(name)


def _offset(token: Optional[str]) -> Optional[tzinfo]:
    if not token:
        return None
    if token in ZONE_ABBREVIATIONS:
        return timezone(timedelta(minutes=ZONE_ABBREVIATIONS[token]))
    token = re.sub(r"^(?:UTC|GMT) ?", "", token)
    sign = -1 if token[0] == "-" else 1
    hours, _, minutes = token[1:].partition(":")
    if not minutes and len(hours) > 2:  # +0100
        hours, minutes = hours[:2], hours[2:]
    return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes or 0)))


def _in_zone(naive_or_aware: datetime, zone: tzinfo) -> datetime:
    if naive_or_aware.tzinfo is None:
        naive_or_aware = naive_or_aware.replace(tzinfo=zone)
    return naive_or_aware.astimezone(timezone.utc)


def _parse_epoch(text: str) -> Optional[ParsedTime]:
    m = _EPOCH.fullmatch(text)
    if not m:
        return None
    seconds = int(m.group(1)) / (1000 if len(m.group(1)) > 10 else 1)
    if m.group(2):
        seconds += float("0." + m.group(2)) / (1000 if len(m.group(1)) > 10 else 1)
    return ParsedTime(datetime.fromtimestamp(int(seconds), tz=timezone.utc))


def _parse_reuters(text: str, zone: tzinfo) -> Optional[ParsedTime]:
    m = _REUTERS.fullmatch(text)
    if not m or m.group(2).lower() not in _MONTHS:
        return None
    day = date(int(m.group(3)), _MONTHS[m.group(2).lower()], int(m.group(1)))
    hour, minute, second = int(m.group(4)), int(m.group(5)), int(m.group(6))
    if m.group("comment"):
        # The corpus editors flagged this value themselves: keep it, say so.
        note = f"the source annotates it {m.group('comment')!r}"
        return ParsedTime(_in_zone(datetime(day.year, day.month, day.day, hour, minute, second), zone),
                          note=note)
    if hour > 23 or minute > 59 or second > 59:
        # One corpus date reads "31-MAR-1987 605:12:19.12". The day agrees with
        # the story's slug line (03-31); the time cannot be recovered, so only
        # the day is kept, flagged, rather than guessing which digit is spurious.
        return ParsedTime(_in_zone(datetime(day.year, day.month, day.day), zone), date_only=True,
                          note=f"impossible time {m.group(4)}:{m.group(5)}:{m.group(6)}; day kept")
    return ParsedTime(_in_zone(datetime(day.year, day.month, day.day, hour, minute, second), zone))


def _parse_iso(text: str, zone: tzinfo) -> Optional[ParsedTime]:
    if not _ISO_START.match(text):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    date_only = len(text) <= 10  # 2024-06-23 or 20240623
    return ParsedTime(_in_zone(parsed, zone), date_only=date_only)


def _parse_rfc822(text: str, zone: tzinfo) -> Optional[ParsedTime]:
    m = _RFC822.fullmatch(text)
    if not m or m.group(2).lower() not in _MONTHS:
        return None
    year = int(m.group(3))
    if len(m.group(3)) == 2:  # RFC 2822 section 4.3
        year += 2000 if year < 50 else 1900
    try:
        parsed = datetime(year, _MONTHS[m.group(2).lower()], int(m.group(1)), int(m.group(4)),
                          int(m.group(5)), int(m.group(6) or 0), tzinfo=_offset(m.group(7)))
    except ValueError:
        return None
    return ParsedTime(_in_zone(parsed, zone))


def _parse_numeric_date(text: str, zone: tzinfo, order: Optional[DayMonthOrder]
                        ) -> Optional[ParsedTime]:
    """Numeric day/month dates. Dotted ones are day first wherever they are
    used. Slashed (or dashed) ones are read month first only when a number
    over 12 says so or the record points to a US source; when both numbers
    could be the month, the reading is kept and the note says how it was made."""
    m = _NUMERIC_DATE.fullmatch(text)
    if not m:
        return None
    first, separator, second, year_text = int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)
    zone_token = m.group(9)
    note = None
    if separator == "." or first > 12:
        day, month = first, second
    elif second > 12:
        month, day = first, second
    else:
        if zone_token in US_ZONE_ABBREVIATIONS:
            order = DayMonthOrder(True, f"US zone {zone_token} in the value")
        elif zone_token in ZONE_ABBREVIATIONS and zone_token not in ("UT", "UTC", "GMT", "Z", "AST"):
            order = DayMonthOrder(False, f"zone {zone_token} in the value")
        order = order or DEFAULT_DAY_MONTH_ORDER
        month, day = (first, second) if order.month_first else (second, first)
        if first != second:
            note = (f"day and month cannot be told apart; read {order.reading} "
                    f"({order.reason}) as {date(2000, month, 1):%B} {day}")
    year = int(year_text)
    if len(year_text) == 2:  # as RFC 2822 section 4.3
        year += 2000 if year < 50 else 1900
    hour, minute, second_of_minute = int(m.group(5) or 0), int(m.group(6) or 0), int(m.group(7) or 0)
    if m.group(8):
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if m.group(8) in "Pp" else 0)
    try:
        parsed = datetime(year, month, day, hour, minute, second_of_minute,
                          tzinfo=_offset(zone_token))
    except ValueError:
        return None
    return ParsedTime(_in_zone(parsed, zone), date_only=m.group(5) is None, note=note)


@lru_cache(maxsize=8192)
def _parse_with_dateparser(text: str, languages: Optional[tuple[str, ...]], zone_name: str,
                           reference: datetime) -> Optional[ParsedTime]:
    # dateparser reads the abbreviation table differently (IST = Israel): give
    # it explicit offsets from ours.
    def to_offset(m: re.Match) -> str:
        minutes = ZONE_ABBREVIATIONS[m.group(1)]
        return f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"

    # "UTC+01:00" first: the bare "UTC" in it is not an offset of its own.
    text = _UTC_PLUS_OFFSET.sub(
        lambda m: f"{m.group(1)}{int(m.group(2)):02d}:{m.group(3) or '00'}", text)
    text = _ZONE_ABBREVIATION_WORD.sub(to_offset, text)
    zone = zone_named(zone_name)
    settings = {
        "TIMEZONE": zone_name,
        "RETURN_AS_TIMEZONE_AWARE": True,
        "RETURN_TIME_AS_PERIOD": True,  # tells a bare day, month or year from a time
        "RELATIVE_BASE": reference.astimezone(zone).replace(tzinfo=None),
    }
    data = DateDataParser(languages=list(languages) if languages else None,
                          settings=settings).get_date_data(text)
    if data.date_obj is None:
        return None
    if data.period in ("month", "year"):
        # dateparser fills the missing day (and month) from the reference time.
        return ParsedTime(_in_zone(data.date_obj, zone), date_only=True,
                          note=f"only the {data.period} is given; the rest is taken from the reference time")
    return ParsedTime(_in_zone(data.date_obj, zone), date_only=data.period != "time")


def parse_time(raw: str, zone_name: str, reference: datetime,
               language: Optional[str] = None,
               day_month_order: Optional[DayMonthOrder] = None) -> Optional[ParsedTime]:
    """Any wire form of a date-time -> UTC, or None when it cannot be read.

    `zone_name` (IANA) is where naive times are read; `reference` (aware) is
    "now" for relative expressions; `language` (ISO 639-1) restricts
    dateparser's language guessing (English is always tried as well, as feed
    metadata is usually English whatever the story's language; then any
    language). `day_month_order` is what the record says about slashed
    numeric dates (record_day_month_order); a zone in the value itself wins."""
    text = _SPACES.sub(" ", _CONTROL_JUNK.sub(" ", raw)).strip()
    if not text:
        return None
    zone = zone_named(zone_name)
    parsed = (_parse_epoch(text) or _parse_reuters(text, zone) or _parse_iso(text, zone)
              or _parse_rfc822(text, zone) or _parse_numeric_date(text, zone, day_month_order))
    if parsed:
        return parsed
    languages = None
    if language in _DATEPARSER_LANGUAGES:
        languages = (language,) if language == "en" else (language, "en")
    return (_parse_with_dateparser(text, languages, zone_name, reference)
            # Not in the expected language: let dateparser guess (slow, rare).
            or (languages and _parse_with_dateparser(text, None, zone_name, reference)) or None)


# A stated time this far after the record's reference time is an error, not news.
MAX_AHEAD = timedelta(days=1)
EARLIEST = datetime(1900, 1, 1, tzinfo=timezone.utc)


def normalise_time(field: str, raw: str, zone_name: str, reference: datetime,
                   language: Optional[str] = None,
                   day_month_order: Optional[DayMonthOrder] = None) -> tuple[Optional[str], list[str]]:
    """`raw` -> ("YYYY-MM-DDTHH:MM:SSZ" or None, quality notes). Unreadable or
    implausible values give None and say why; they never fail the story."""
    parsed = parse_time(raw, zone_name, reference, language, day_month_order)
    if parsed is None:
        return None, [f"{field}: unparseable {raw!r}"]
    if parsed.instant > reference + MAX_AHEAD:
        return None, [f"{field}: {utc_iso(parsed.instant)} from {raw!r} is more than a day after "
                      f"the record's reference time {utc_iso(reference)}"]
    if parsed.instant < EARLIEST:
        return None, [f"{field}: {utc_iso(parsed.instant)} from {raw!r} is before 1900"]
    notes = []
    if parsed.note:
        notes.append(f"{field}: {parsed.note} in {raw!r}")
    elif parsed.date_only:
        notes.append(f"{field}: date only in {raw!r}")
    return utc_iso(parsed.instant), notes
