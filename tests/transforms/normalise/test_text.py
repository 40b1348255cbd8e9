import pytest

from wirestream.transforms.normalise.text import (
    clean_text, html_to_text, looks_like_html, repair_mojibake, strip_boilerplate)


def test_html_to_text_keeps_paragraphs_and_drops_scripts():
    markup = ("<section><p>Für Lucien Favre war es «der größte Skandal».</p>"
              "<script>track()</script><p>Zweiter&nbsp;Absatz &amp; mehr</p></section>")
    assert html_to_text(markup) == "Für Lucien Favre war es «der größte Skandal».\n\nZweiter Absatz & mehr"
    assert looks_like_html(markup) and not looks_like_html("3 < 4 and 5 > 2")


def test_clean_text_normalises_unicode_quotes_and_spaces():
    text = "Putin\u2019s  \u201cpeace\u201d\u00a0plan\r\nstays.\n\n\n  Cafe\u0301 \u200bopen\u00ad"
    assert clean_text(text) == "Putin's \"peace\" plan stays.\n\nCafé open"


def test_clean_text_repairs_mojibake_only_when_unambiguous():
    assert repair_mojibake("Bundesbank-PrÃ¤sident sagte, dass") == "Bundesbank-Präsident sagte, dass"
    assert clean_text("The cafÃ© said") == "The café said"
    assert clean_text("Zürich, Ærø, Łódź") == "Zürich, Ærø, Łódź"  # correct text is left alone
    # cp1252 read as Latin-1 leaves C1 controls: the apostrophe meant, as HTML parsers read it.
    assert clean_text("le débat qui doit s\x92engager") == "le débat qui doit s'engager"


def test_plain_text_keeps_every_character():
    # Plain text is not markup: entities and angle brackets are what the source wrote.
    text = "AT&amp;T &lt;T&gt; <Shell U.K. Ltd's> Royal Dutch/Shell Group <RD.AS>, 5 < 6 > 4"
    assert clean_text(text) == text
    assert not looks_like_html(text)


def test_html_is_decoded_exactly_once():
    assert html_to_text("<p>AT&amp;amp;T &lt;RD.AS&gt; &#8364;5</p>") == "AT&amp;T <RD.AS> €5"
    assert html_to_text("<p>AT&amp;T</p>") == "AT&T"


def test_clean_text_removes_wire_carriage_returns():
    assert clean_text("Net 1.1 mln\nREUTER^M") == "Net 1.1 mln REUTER"


@pytest.mark.parametrize("text", [
    "Putin\u2019s “plan”\n\n\n Reuter\n",
    "AT&amp;amp;T &amp;lt; x",
    "PrÃ¤sident\u00a0 und\tso  weiter",
    "a\r\nb\r\n\r\nc",
])
def test_clean_text_is_idempotent(text):
    assert clean_text(clean_text(text)) == clean_text(text)


@pytest.mark.parametrize("body, expected", [
    ("Cocoa rose.\n\nReuter", "Cocoa rose."),
    ("Cocoa rose.\n\nREUTER...", "Cocoa rose."),
    ("Net 1.1 mln vs 829,000 Reuter", "Net 1.1 mln vs 829,000"),
    ("Prices fell, a trader told Reuters.", "Prices fell, a trader told Reuters."),
    ("Prices fell. Reuters", "Prices fell."),
    ("Talks resumed.\n\n(Reporting by Jane Doe; Editing by John Roe)", "Talks resumed."),
    ("Talks resumed.\n\nMORE", "Talks resumed."),
    ("The Reuter family said the talks resumed.", "The Reuter family said the talks resumed."),
])
def test_strip_boilerplate_sign_offs(body, expected):
    assert strip_boilerplate(body) == (expected, [])


def test_strip_boilerplate_moves_related_lists_out_of_the_body():
    body = ("Talks resumed on Monday.\n\nRelated: Ceasefire holds; Aid convoy arrives\n\n"
            "- Prices jump after talks\n\nReuters")
    assert strip_boilerplate(body) == (
        "Talks resumed on Monday.",
        ["Ceasefire holds", "Aid convoy arrives", "Prices jump after talks"])


def test_strip_boilerplate_keeps_a_related_paragraph_followed_by_story_text():
    long_paragraph = "The minister said " + "the talks would continue " * 10 + "."
    body = f"Related: this is not a list.\n\n{long_paragraph}"
    assert strip_boilerplate(body) == (body, [])


@pytest.mark.parametrize("text, expected", [
    ("Cocoa rose.\n\nTraders said so.", "Cocoa rose.\n\nTraders said so."),  # already clean
    ("Cocoa rose.\nTraders said so.", "Cocoa rose. Traders said so."),
    ("Cocoa  rose.", "Cocoa rose."),
    ("Cocoa\trose.", "Cocoa rose."),
    ("Cocoa rose.\n\n\nTraders", "Cocoa rose.\n\nTraders"),
    ("Cocoa rose.\n\n Traders", "Cocoa rose.\n\nTraders"),
    ("Cocoa rose. \n\nTraders", "Cocoa rose.\n\nTraders"),
    (" Cocoa rose.", "Cocoa rose."),
    ("Cocoa rose.\n", "Cocoa rose."),
    ("Cocoa\x0b rose\x7f.", "Cocoa rose."),
    ("Cocoa rose.^M\n\nTraders", "Cocoa rose.\n\nTraders"),
    ("Cocoa rose.\r\n\r\nTraders", "Cocoa rose.\n\nTraders"),
    ("a \n \n b\n  \nc", "a\n\nb\n\nc"),
])
def test_ascii_text_is_returned_as_is_only_when_clean(text, expected):
    # ASCII text already in clean form is returned without the clean-up passes.
    assert clean_text(text) == expected


def test_line_breaks_inside_a_paragraph_take_their_surrounding_whitespace():
    assert clean_text("one \u2028\n\u3000two\nthree \n\u00a0four") == "one two three four"


def _regex_layout(text: str) -> str:
    # clean_text's layout as the non-ASCII path computes it, for ASCII text.
    from wirestream.transforms.normalise import text as module
    text = module._CARET_M.sub("", module._INVISIBLE.sub("", text.replace("\r\n", "\n").replace("\r", "\n")))
    paragraphs = (module._LINE_BREAK.sub(" ", block).strip()
                  for block in module._PARA_BREAK.split(module._SPACES.sub(" ", text)))
    return "\n\n".join(p for p in paragraphs if p)


def test_the_ascii_line_pass_lays_out_text_as_the_regexes_do():
    import random
    rng = random.Random(7)
    # Every ASCII whitespace and control character, carets and letters, in short runs.
    alphabet = list(" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x00\x08\x7f^Mab.")
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 16))) for _ in range(50_000)]
    texts += ["Shr 45 cts\n    Net 1.2 mln\n \n  Reuter\n\x03", " a\x1cb \x0b\n\x0c\nc ", "x ^M\ny^M"]
    for text in texts:
        assert clean_text(text) == _regex_layout(text), repr(text)
        assert clean_text(clean_text(text)) == clean_text(text), repr(text)  # clean text stays as it is


def test_the_compiled_cleaning_of_long_ascii_text_gives_what_the_python_path_gives(shared_data):
    """The kernel a warmed-up worker cleans long ASCII text with: every ASCII character,
    random layouts and every Reuters-21578 body, against the regexes' layout and the
    line pass it replaces."""
    import random
    import subprocess
    import sys
    from wirestream.transforms.io.archive import list_archive_files, read_archive_file
    from wirestream.transforms.normalise import text as module
    from wirestream.transforms.parse import reuters

    def python_path(text):
        return module._ascii_layout(module._without_caret_m(module._INVISIBLE.sub(
            "", text.replace("\r\n", "\n").replace("\r", "\n"))))

    # A process that has not loaded the kernel cleans without it, and imports no numba for it.
    probe = ("import sys; from wirestream.transforms.normalise.text import clean_text; "
             "clean_text('Net  profit\\n\\n\\n up ' * 40); print('numba' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.split() == ["False"]
    module.load_kernels()
    rng = random.Random(11)
    alphabet = [chr(c) for c in range(128) if chr(c) != "^"] + list("  \n\n\r\tab")
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(200, 600))) for _ in range(3_000)]
    texts += ["".join(rng.choice(" \t\n\r\x0b\x01\x7fab.") for _ in range(rng.randint(200, 400))) for _ in range(3_000)]
    bodies = []
    split = reuters.reuters_story

    def keep(**fields):
        bodies.append(reuters._PARAGRAPH_INDENT.sub("\n\n", fields["body"]))
        return split(**fields)

    reuters.reuters_story = keep
    try:
        from wirestream.transforms.parse import parse_record
        for archive in list_archive_files(str(shared_data / "reuters21578" / "original" / "*.sgm")):
            for raw in read_archive_file(archive):
                list(parse_record(raw))
    finally:
        reuters.reuters_story = split
    assert len(bodies) > 19_000
    compiled = 0
    for text in texts + [body for body in bodies if body.isascii()]:  # one Latin-1 body is not
        module._CLEANED.clear()
        expected = python_path(text)
        compiled += len(text) >= module._COMPILED_LAYOUT_MIN and "^" not in text
        assert module._ascii_cleaned(text) == expected, repr(text)
    for text in texts:
        assert clean_text(text) == _regex_layout(text), repr(text)
    assert compiled > 15_000


def test_every_ascii_output_is_cleaned_to_itself_whatever_the_input():
    # clean_text remembers its ASCII outputs by identity and returns them as they are.
    import random
    from wirestream.transforms.normalise import text as module
    rng = random.Random(3)
    alphabet = list(" \t\n\r\x0b\x00\x85\xa0\u2019\u201c\u201d\u00ad\u200b^Mab.\x92\u2014\u2013")
    ascii_outputs = 0
    for _ in range(50_000):
        cleaned = clean_text("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 16))))
        module._CLEANED.clear()
        if cleaned.isascii():
            ascii_outputs += 1
            assert clean_text(cleaned) == cleaned, repr(cleaned)
    assert ascii_outputs > 10_000


@pytest.mark.parametrize("text", ["^M^M ", "a\n\n^M^M", "Net ^M^M\nReuter", "Plain  text\n\n\nhere"])
def test_cleaning_again_what_was_just_cleaned_gives_what_a_fresh_cleaning_gives(text):
    from wirestream.transforms.normalise import text as module
    once = clean_text(text)
    again = clean_text(once)  # may be answered from clean_text's record of its outputs
    module._CLEANED.clear()
    assert again == clean_text(once)
    assert again == once
    assert clean_text("^M^M ") == "" and clean_text("Net ^M^M\nReuter") == "Net Reuter"


def test_strip_boilerplate_skips_its_regexes_only_where_they_cannot_match():
    import sys

    from wirestream.transforms.normalise import text as module
    first = {chr(c) for c in range(sys.maxunicode + 1) if module._RELATED.match(chr(c) + "elated: x")
             or module._RELATED.match(chr(c) + "ee also: x") or module._RELATED.match(chr(c) + "ore on this: x")
             or module._RELATED.match(chr(c) + "ead more: x")}
    assert first == module._RELATED_FIRST
    assert strip_boilerplate("Story.\n\n\u017fee also: One; Two") == ("Story.", ["One", "Two"])
    assert strip_boilerplate("Profit rose. REUTER...") == ("Profit rose.", [])


def test_the_trailing_sign_off_is_removed_as_the_regex_over_the_whole_paragraph_removes_it():
    import random

    from wirestream.transforms.normalise import text as module
    rng = random.Random(4)
    pieces = ["Reuter", "REUTER", "reuter", "Reuters", "REUTERS", " ", "  ", ".", "...", ")", "\t", "\n", "x",
              "said", "euter", "-", "\u3000"]
    removed = 0
    for _ in range(30_000):
        paragraph = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 9)))
        expected = module._TRAILING_SIGN_OFF.sub("", paragraph)
        assert module._without_trailing_sign_off(paragraph) == expected, repr(paragraph)
        removed += expected != paragraph
    assert removed > 500  # sign-offs were met, not only their absence
