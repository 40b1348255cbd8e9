import json
from collections import defaultdict

import pytest

from transforms.normalise.language import (
    DetectedLanguage, choose_language, detect_language, normalise_language_tag)


@pytest.mark.parametrize("tag, expected", [
    ("en", ("en", None)), ("EN", ("en", None)), ("en-US", ("en", "US")), ("en_GB", ("en", "GB")),
    ("en-us", ("en", "US")), ("eng", ("en", None)), ("English", ("en", None)),
    ("nb-NO", ("nb", "NO")), ("zh-Hans", ("zh", "Hans")), ("zh-hant-tw", ("zh", "Hant-TW")),
    ("ger", ("de", None)), ("deu", ("de", None)), ("iw", ("he", None)), (" fr ", ("fr", None)),
    ("", (None, None)), (None, (None, None)), ("xx", (None, None)), ("klingonese", (None, None)),
])
def test_declared_tags(tag, expected):
    assert normalise_language_tag(tag) == expected


@pytest.mark.parametrize("text, expected", [
    ("Russian President Vladimir Putin's peace proposal for Ukraine remains open.", "en"),
    ("Für Lucien Favre war es der größte Skandal im Fußball seit Jahren.", "de"),
    ("IT-giganten Google har kjøpt en tomt på nærmere 2.000 mål i Skien.", "nb"),
    ("Президент России заявил, что мирное предложение остаётся в силе.", "ru"),
    ("الرئيس الروسي قال إن اقتراح السلام لا يزال قائما", "ar"),
    ("俄罗斯总统表示和平建议仍然有效", "zh"),  # han without hangul is not Korean
    ("東京都は新しい計画を発表した", "ja"),
    ("BAHIA COCOA REVIEW SHOWS RAINS CONTINUED THROUGHOUT THE WEEK", "en"),  # all capitals
])
def test_detection(text, expected):
    assert detect_language(text).code == expected


@pytest.mark.parametrize("text", ["", "   ", "12:45 - 3.5%", "Hi there", "OK"])
def test_empty_or_too_short_text_is_undetermined(text):
    assert detect_language(text) == DetectedLanguage("und", 0.0)


def test_detection_is_deterministic_and_order_independent():
    texts = ["Le gouvernement a annoncé mardi de nouvelles mesures.",
             "El gobierno anunció el martes nuevas medidas.",
             "O governo anunciou na terça-feira novas medidas."]
    first = [detect_language(t) for t in texts]
    assert [detect_language(t) for t in reversed(texts)] == list(reversed(first))
    assert [d.code for d in first] == ["fr", "es", "pt"]


def test_confidence_is_lower_for_a_short_ambiguous_text():
    assert detect_language("Det er godt.").confidence < detect_language(
        "Regjeringen la fram statsbudsjettet for neste år i Stortinget i dag, og "
        "finansministeren varslet kutt i flere store poster.").confidence


DETECTED_ES = DetectedLanguage("es", 0.97, (("es", 0.97), ("pt", 0.03)))


def test_choose_language_rule():
    assert choose_language(None, DETECTED_ES, 0.9) == ("es", 0.97, [])
    assert choose_language("es", DETECTED_ES, 0.9) == ("es", 0.97, [])
    assert choose_language("en", DetectedLanguage("und", 0.0), 0.9) == ("en", 0.0, [])
    language, confidence, notes = choose_language("en", DETECTED_ES, 0.9)
    assert (language, confidence) == ("es", 0.97) and "detected language used" in notes[0]
    language, confidence, notes = choose_language("en", DETECTED_ES, 0.99)
    assert (language, confidence) == ("en", 0.0) and "declared language kept" in notes[0]
    # Close relatives: the publisher is trusted however confident detection is.
    language, confidence, notes = choose_language("ca", DETECTED_ES, 0.5)
    assert (language, confidence) == ("ca", 0.0) and "declared language kept" in notes[0]
    # Detection's confidence in the declared language is reported when it is kept.
    assert choose_language("pt", DETECTED_ES, 0.99)[:2] == ("pt", 0.03)


def test_stories_of_one_language_are_recognised(shared_data):
    """Accuracy floor on whole stories (the benchmark prints the full table)."""
    by_language = defaultdict(list)
    with (shared_data / "lingua_langid_sentences" / "sentences.jsonl").open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["lang"] in ("en", "de", "fr", "es", "ru", "uk", "ar", "zh") and \
                    len(by_language[row["lang"]]) < 120:
                by_language[row["lang"]].append(row["text"])
    stories = [(lang, " ".join(texts[i:i + 4])) for lang, texts in by_language.items()
               for i in range(0, len(texts), 4)]
    wrong = [(lang, text[:60]) for lang, text in stories if detect_language(text).code != lang]
    assert len(wrong) <= len(stories) // 200, wrong
