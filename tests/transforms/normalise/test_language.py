import functools
import json
from collections import defaultdict

import numpy as np
import pytest

from wirestream.transforms.normalise.language import (
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


def test_the_cached_iso_639_table_answers_as_pycountry_does():
    import pycountry

    from wirestream.transforms.normalise.language import _build_iso_639_codes

    codes = _build_iso_639_codes()
    values = {v.lower() for language in pycountry.languages for v in language._fields.values()}
    values |= {"i", "l", "english", "norwegian bokmål", "klingonese", "qqq"}  # one-letter scope/type fields too
    for value in values:
        try:
            expected = getattr(pycountry.languages.lookup(value), "alpha_2", None)
        except LookupError:
            expected = None
        assert codes.looked_up.get(value) == expected, value
    assert codes.alpha_2 == {v for v in values if pycountry.languages.get(alpha_2=v) is not None}


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


ENGLISH = ("The central bank raised its main interest rate by half a point on Tuesday, "
           "saying that inflation had risen faster than expected over the winter months. ")
GERMAN = ("Die Zentralbank hat ihren Leitzins am Dienstag um einen halben Punkt erhöht und "
          "erklärte, die Inflation sei in den Wintermonaten schneller gestiegen als erwartet. ")


def test_reading_stops_once_one_language_clearly_leads():
    whole = detect_language(ENGLISH * 6, max_chars=10_000)
    assert whole.code == "en" and whole.confidence == 1.0
    # The decision rests on the first two sentences; the other four are never read.
    assert 0 < whole.letters <= 2 * sum(map(str.isalpha, ENGLISH))


def test_an_unclear_start_is_read_on():
    # A table of figures leads no language clearly; the words after it decide.
    table = "Shr 45 cts vs 58 cts Net 1,234,000 vs 987,000 Revs 12.3 mln vs 11.1 mln " * 3
    detected = detect_language(table + GERMAN * 3, max_chars=10_000)
    assert detected.code == "de"
    assert detected.letters > detect_language(table).letters + len("Die Zentralbank hat ihren Leitzins")


@pytest.mark.parametrize("text, expected", [
    ("Η κυβέρνηση ανακοίνωσε νέα μέτρα για την οικονομία την Τρίτη.", "el"),
    ("הממשלה הודיעה ביום שלישי על צעדים חדשים בכלכלה", "he"),
    ("รัฐบาลประกาศมาตรการใหม่เพื่อเศรษฐกิจเมื่อวันอังคาร", "th"),
    ("정부는 화요일 경제를 위한 새로운 조치를 발표했다", "ko"),
])
def test_a_script_only_one_language_uses_decides_without_statistics(text, expected, monkeypatch):
    from wirestream.transforms.normalise import language
    model = language._profile_model()
    monkeypatch.setattr(model, "log_prob", None)  # any n-gram scoring would fail
    monkeypatch.setattr(model, "word_table", language._WordTable(model))
    detected = detect_language(text)
    assert (detected.code, detected.confidence, detected.probabilities) == (expected, 1.0, ((expected, 1.0),))


def test_a_shared_script_is_still_scored():
    # Cyrillic is shared by ru, uk, bg, mk: no shortcut, the profiles decide.
    assert detect_language("Уряд оголосив у вівторок нові заходи для економіки країни.").code == "uk"
    # Greek words in a Latin text do not make it Greek.
    assert detect_language("The word δημοκρατία means rule by the people in Greek.").code == "en"


@functools.cache
def _gram_rows(model) -> dict[str, int]:
    """n-gram -> its row, read back from the numbers the model files them under:
    21 bits per character, its code point + 1, the first character lowest."""
    def gram(key: int) -> str:
        chars = []
        while key:
            chars.append(chr((key & (1 << 21) - 1) - 1))
            key >>= 21
        return "".join(chars)
    return {gram(int(key)): row for row, key in enumerate(model.gram_keys)}


def _word_rows(model, word: str) -> list[int]:
    """The reference for a word's score: the rows of its known 1-3-grams, the word
    padded with spaces as langdetect does (" ab", "ab ", ...), 1-grams first; none
    for a word in capitals. The compiled scoring must add exactly these, in this order."""
    if len(word) > 1 and word.isupper():
        return []
    padded = f" {word} "
    rows = _gram_rows(model)
    return [rows[gram] for n in (1, 2, 3) for start in range(len(padded) - n + 1)
            if (gram := padded[start:start + n]) != " " and gram in rows]


def test_word_scores_are_summed_in_reading_order():
    import numpy as np

    from wirestream.transforms.normalise import language
    model = language._profile_model()
    table = language._WordTable(model)
    table.rows = table.rows[:2]  # force the rows to grow while words are added
    words = "The central bank raised rates on Monday Die Zentralbank hob die Zinsen BANK".split()
    ids = table.ids(words)
    assert ids[-1] == 0 and table.letters[0] == 0  # capitals score nothing
    expected = np.zeros(len(model.codes), dtype=np.float32)
    expected[0] = np.float32(-1e9)
    start = expected.copy()
    for word, row in zip(words, ids):
        grams = _word_rows(model, word)
        score = model.log_prob[grams].sum(axis=0) if grams else np.zeros_like(expected)
        assert table.rows[row].tobytes() == score.tobytes()
        expected = expected + score  # one word after the other
    assert language._add_rows(start, table.rows, ids).tobytes() == expected.tobytes()


def test_the_compiled_lead_is_numpys_argmax_and_float32_gap_to_the_other_languages():
    import random

    from wirestream.transforms.normalise import language
    model = language._profile_model()
    rng = np.random.default_rng(7)
    profiles = len(model.codes)
    zh = [c for c, code in enumerate(model.codes) if code == "zh"]
    rows = rng.normal(0, 30, (50, profiles)).astype(np.float32)
    outcomes = set()
    for case in range(400):
        start = rng.normal(0, 200, profiles).astype(np.float32)
        ids = [random.Random(case).randrange(50) for _ in range(case % 9)]
        if case % 4 == 0:  # zh-cn and zh-tw lead together: one language
            start[zh] = start.max() + 500
        if case % 5 == 0:  # a tie for the lead: the first is the leader
            start[3] = start[11] = start.max() + 1000
        total = start.copy()
        for i in ids:
            total = total + rows[i]
        best = int(total.argmax())
        others = total[[c for c, code in enumerate(model.codes) if code != model.codes[best]]]
        expected = best if float(total[best] - others.max()) >= language._DECISIVE_GAP else None
        got, leader = language._add_and_lead(start, rows, ids, model)
        assert got.tobytes() == total.tobytes() and leader == expected, case
        outcomes.add(expected is None)
    assert outcomes == {True, False}  # leads and no leads both met


def test_a_decisive_lead_gives_the_full_posterior(monkeypatch):
    from wirestream.transforms.normalise import language
    text = ("The central bank raised its key interest rate on Monday for the third time this year, "
            "saying that inflation was still far too high and that it would act again if needed. ") * 4
    shortcut = detect_language(text)
    model = language._profile_model()
    monkeypatch.setattr(model, "sole_profile", [False] * len(model.codes))  # always the full posterior
    full = detect_language(text)
    assert (shortcut.code, shortcut.confidence, shortcut.probabilities, shortcut.letters) == (
        full.code, full.confidence, full.probabilities, full.letters) == ("en", 1.0, (("en", 1.0),),
                                                                          shortcut.letters)
    assert shortcut.letters < len(text)  # it stopped early


def test_many_new_words_at_once_score_as_one_word_at_a_time():
    import random

    import numpy as np

    from wirestream.transforms.normalise import language
    model = language._profile_model()
    table = language._WordTable(model)
    rng = random.Random(5)
    # Long and short, Latin, kana and han words, and capitals (no grams), all new in one call.
    words = ["".join(rng.choice("abcdeéßñひカ中x😀\U0010fffd") for _ in range(rng.randint(1, 40))) for _ in range(500)]
    words += ["NATO", "a", "Zentralbank"]
    ids = table.ids(words)
    for word, row in zip(words, ids):
        grams = _word_rows(model, word)
        score = model.log_prob[grams].sum(axis=0) if grams else np.zeros(len(model.codes), np.float32)
        assert table.rows[row].tobytes() == score.tobytes(), word


def test_a_url_is_not_read_as_words():
    text = "The central bank raised its rates on Monday, saying inflation was too high."
    with_url = detect_language(text + " https://www.example.com/abcdefghijklmnopqrstuvwxyz")
    assert with_url.letters == detect_language(text).letters


def test_each_n_gram_row_holds_its_smoothed_log_probability_from_the_profiles():
    import os
    import random

    from langdetect.detector import Detector
    from langdetect.detector_factory import PROFILES_DIRECTORY

    from wirestream.transforms.normalise import language
    model = language._profile_model()
    rows = _gram_rows(model)
    assert list(model.gram_keys) == sorted(model.gram_keys)
    smoothing = Detector.ALPHA_DEFAULT / Detector.BASE_FREQ
    rng = random.Random(3)
    for name in ("de", "en", "ja", "zh-tw"):
        with open(os.path.join(PROFILES_DIRECTORY, name), encoding="utf-8") as f:
            profile = json.load(f)
        column = sorted(n for n in os.listdir(PROFILES_DIRECTORY) if not n.startswith(".")).index(name)
        grams = [g for g in profile["freq"] if 1 <= len(g) <= 3]
        for gram in rng.sample(grams, 200):
            expected = np.float32(np.log(profile["freq"][gram] / profile["n_words"][len(gram) - 1] + smoothing))
            assert model.log_prob[rows[gram], column] == expected, (name, gram)
        unseen = next(g for g in rows if g not in profile["freq"])
        assert model.log_prob[rows[unseen], column] == np.float32(np.log(smoothing))


def test_cached_language_profiles_equal_a_fresh_build_and_a_damaged_cache_is_built_again(tmp_path, monkeypatch):
    from wirestream.transforms.normalise import language
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    built = language._ProfileModel()
    (matrix,) = (tmp_path / "wirestream").glob("language-profiles-*[0-9a-f].npy")
    assert len(list((tmp_path / "wirestream").glob("language-profiles-*.keys.npy"))) == 1
    monkeypatch.setattr(language, "_build_profile_tables", lambda *a: pytest.fail("built again"))
    cached = language._ProfileModel()
    assert np.array_equal(cached.gram_keys, built.gram_keys) and cached.codes == built.codes
    assert cached.log_prob.dtype == built.log_prob.dtype and np.array_equal(cached.log_prob, built.log_prob)
    text = "Der Bundeskanzler sagte am Montag, dass die Regierung bereit sei, neue Gespräche zu führen."
    monkeypatch.setattr(language, "_model", built)
    fresh = language.detect_language(text)
    monkeypatch.setattr(language, "_model", cached)
    assert language.detect_language(text) == fresh and fresh.code == "de"
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    matrix.write_bytes(matrix.read_bytes()[:1000])  # a truncated matrix
    again = language._ProfileModel()
    assert np.array_equal(again.log_prob, built.log_prob)
    assert np.load(matrix).shape == built.log_prob.shape  # written whole again
