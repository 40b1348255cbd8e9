"""Each supported format maps onto the canonical Story; real specimens where we have them."""

import json

import pytest

from wirestream.schemas import DeadLetter, Origin, RawRecord, Story
from wirestream.transforms.parse import parse_record, sniff_format

ORIGIN = Origin(kind="file", ingested_at="2024-06-24T12:00:00Z", path="test")


def parse(payload, hint=None):
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return list(parse_record(RawRecord(payload, ORIGIN, hint)))


def one_story(payload, hint=None) -> Story:
    out = parse(payload, hint)
    assert len(out) == 1 and isinstance(out[0], Story), out
    return out[0]


def test_ninjs_2_with_html_body(shared_data):
    raw = (shared_data / "iptc_ninjs_examples" / "dpa_text.json").read_bytes()
    story = one_story(raw, "json")
    assert story.format == "ninjs"
    assert story.story_id == "urn:newsml:dpa.com:20090101:190510-99-167362"
    assert story.version == 2 and story.source == "dpa" and story.language_raw == "de"
    assert story.published_raw == "2019-05-10T16:02:28+02:00"
    assert story.headline.startswith("Faktencheck Derby-Elfmeter")
    assert "<p>" not in story.body and "Lucien Favre" in story.body
    assert "\n\n" in story.body  # paragraphs survive HTML removal


def test_ninjs_description_only_story_and_subjects(shared_data):
    story = one_story((shared_data / "iptc_ninjs_examples" / "ntb_text.json").read_bytes())
    assert story.headline == "Google har kjøpt giganttomt i Skien"
    assert story.body.startswith("IT-giganten Google har kjøpt")
    assert story.language_raw == "nb-NO" and story.version == 6
    assert ("13010000", "Teknologi") in [(s.code, s.name) for s in story.subjects]
    assert story.place_labels == ["Telemark"]


def test_ninjs_1x_fields():
    story = one_story(json.dumps({"uri": "urn:x:1", "version": "3", "headline": "H",
                                  "body_text": "Text.", "versioncreated": "2024-01-01T00:00:00Z",
                                  "subject": [{"code": "medtop:01000000", "name": "arts"}]}))
    assert (story.format, story.story_id, story.version, story.body) == ("ninjs", "urn:x:1", 3, "Text.")
    assert story.subjects[0].code == "medtop:01000000"


@pytest.mark.parametrize("doc,field,expected", [
    ({"title": "T", "text": "B"}, "headline", "T"),
    ({"headline": "T", "content": "<p>B <b>x</b></p>"}, "body", "B x"),
    ({"title": "T", "text": "B", "pubDate": "Sun, 23 Jun 2024 18:00:00 GMT"}, "published_raw",
     "Sun, 23 Jun 2024 18:00:00 GMT"),
    ({"title": "T", "text": "B", "lang": "EN"}, "language_raw", "EN"),
    ({"title": "T", "text": "B", "agency": {"name": "AFP"}}, "source", "AFP"),
    ({"title": "T", "text": "B", "link": "https://x/1"}, "url", "https://x/1"),
    ({"title": "T", "text": "B", "guid": "g-1"}, "story_id", "g-1"),
    ({"title": "T", "text": "B", "related": ["A", "B"]}, "related_headlines", ["A", "B"]),
])
def test_agency_json_aliases(doc, field, expected):
    story = one_story(json.dumps(doc))
    assert story.format == "json"
    assert getattr(story, field) == expected


NEWSML_MESSAGE = b"""<?xml version="1.0" encoding="UTF-8"?>
<newsMessage xmlns="http://iptc.org/std/nar/2006-10-01/">
 <header><sent>2024-06-24T10:00:00Z</sent></header>
 <itemSet>
  <packageItem guid="pkg"><itemRef residref="a"/></packageItem>
  <newsItem guid="urn:a" version="2" xml:lang="fr">
   <itemMeta><itemClass qcode="ninat:text"/><provider qcode="nprov:AFP"/>
     <versionCreated>2024-06-24T09:00:00+02:00</versionCreated></itemMeta>
   <contentMeta><headline>Titre</headline>
     <subject qcode="medtop:11000000"><name>politics</name></subject></contentMeta>
   <contentSet><inlineXML contenttype="application/xhtml+xml">
     <html xmlns="http://www.w3.org/1999/xhtml"><body><p>Premier paragraphe.</p><p>Second.</p></body></html>
   </inlineXML></contentSet>
  </newsItem>
  <newsItem guid="urn:b"><itemMeta><itemClass qcode="ninat:picture"/></itemMeta></newsItem>
 </itemSet>
</newsMessage>"""


def test_newsml_message_items_each_accounted_for():
    out = parse(NEWSML_MESSAGE, "xml")
    assert [type(o).__name__ for o in out] == ["Story", "DeadLetter"]
    story, dead = out
    assert (story.story_id, story.version, story.source, story.language_raw) == ("urn:a", 2, "AFP", "fr")
    assert story.body == "Premier paragraphe.\n\nSecond."
    assert story.origin.item == 0 and dead.origin.item == 1
    assert b'guid="urn:b"' in dead.raw and "no text content" in dead.error


def test_newsml_item_with_nitf_body(shared_data):
    raw = (shared_data / "iptc_newsml_g2_examples" / "LISTING_2_NewsML-G2_Text_Document.xml").read_bytes()
    story = one_story(raw, "xml")
    assert story.story_id == "urn:newsml:acmenews.com:20161121:US-FINANCE-FED" and story.version == 11
    assert story.headline == 'Fed to halt QE to avert "bubble"'
    assert story.body.startswith("(New York, NY - October 21)") and story.body.count("\n\n") == 1
    assert story.language_raw == "en-US"
    assert "medtop:20000350" in [s.code for s in story.subjects]


def test_nitf_in_inline_xml_fragment(shared_data):
    raw = (shared_data / "iptc_newsml_g2_examples" /
           "LISTING_25_An_NITF_marked-up_article_conveyed_in_inlineXML.xml").read_bytes()
    story = one_story(raw, "xml")
    assert story.headline.startswith("Arizona Diamondbacks (29-23)")
    assert "Citizen Bank Park" in story.body


RSS = """<?xml version="1.0"?><rss version="2.0"
 xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>Wire</title>
 <language>en-us</language>
 <item><title>First</title><link>https://w/1</link><guid>w-1</guid>
   <pubDate>Sun, 23 Jun 2024 18:00:00 GMT</pubDate>
   <description>&lt;p&gt;Short &amp;amp; sweet.&lt;/p&gt;</description></item>
 <item><title>Second</title><link>https://w/2</link>
   <content:encoded><![CDATA[<p>Full <em>text</em>.</p>]]></content:encoded></item>
</channel></rss>"""


def test_rss_items():
    first, second = parse(RSS, "xml")
    assert (first.format, first.headline, first.body, first.story_id, first.source) == (
        "rss", "First", "Short & sweet.", "w-1", "Wire")
    assert first.published_raw == "Sun, 23 Jun 2024 18:00:00 GMT" and first.language_raw == "en-us"
    assert (second.body, second.story_id, second.origin.item) == ("Full text.", "https://w/2", 1)


ATOM = """<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="de"><title>Agentur</title>
 <entry><id>tag:a,2024:1</id><title>Eins</title><link href="https://a/1"/>
  <published>2024-06-24T08:00:00+02:00</published><updated>2024-06-24T09:00:00+02:00</updated>
  <content type="html">&lt;p&gt;Text eins.&lt;/p&gt;</content></entry>
</feed>"""


def test_atom_entry():
    story = one_story(ATOM, "xml")
    assert (story.format, story.story_id, story.url, story.source) == (
        "atom", "tag:a,2024:1", "https://a/1", "Agentur")
    assert story.body == "Text eins." and story.language_raw == "de"
    assert story.published_raw == "2024-06-24T08:00:00+02:00"


REUTERS = b"""<REUTERS TOPICS="YES" NEWID="7"><DATE> 5-MAR-1987 09:15:05.40&#5;&#5;F</DATE>
<TOPICS><D>cocoa</D></TOPICS><PLACES><D>el-salvador</D><D>usa</D></PLACES>
<TEXT>&#2;
<TITLE>COCOA &lt;CC&gt; REVIEW</TITLE>
<DATELINE>    SALVADOR, Feb 26 - </DATELINE><BODY>Showers continued &amp; more
throughout the week.
    The dry period means the temporao will be late.
 Reuter
&#3;</BODY></TEXT>
</REUTERS>"""


def test_reuters_sgml_element():
    story = one_story(REUTERS, "sgm")
    assert (story.format, story.story_id, story.source) == ("reuters-sgml", "reuters21578:7", "Reuters")
    assert story.headline == "COCOA <CC> REVIEW"
    assert story.body.startswith("Showers continued & more throughout the week.\n\n"
                                 "The dry period means the temporao will be late.")
    assert "&#" not in story.body
    assert story.published_raw == " 5-MAR-1987 09:15:05.40&#5;&#5;F"  # kept as written
    assert story.place_labels == ["el-salvador", "usa"]
    assert [s.code for s in story.subjects] == ["reuters-topic:cocoa"]
    assert story.dateline == "SALVADOR, Feb 26 -"


def test_reuters_brief_is_a_headline_only_story():
    brief = b"""<REUTERS NEWID="30"><DATE>26-FEB-1987 15:43:14.36</DATE><TEXT TYPE="BRIEF">&#2;
******<TITLE>ASSETS OF MONEY MARKET MUTUAL FUNDS ROSE 720.4 MLN DLRS
</TITLE>Blah blah blah.
&#3;
</TEXT></REUTERS>"""
    story = one_story(brief, "sgm")
    assert story.headline == "ASSETS OF MONEY MARKET MUTUAL FUNDS ROSE 720.4 MLN DLRS"
    assert story.body == ""


def test_reuters_elements_read_as_the_first_open_tag_to_the_first_close_after_it():
    from wirestream.transforms.parse.reuters import _element
    assert _element("<T>a</T> <T>b</T>", "T") == "a"
    assert _element("x</T><T>a<T>b</T>", "T") == "a<T>b"  # a close before the open does not count
    assert _element("<T></T>", "T") == "" and _element("<T>a", "T") is None and _element("a</T>", "T") is None
    assert _element("<TX>a</TX>", "T") is None
    # <TEXT ...> with attributes, its content up to the first </TEXT>
    story = one_story(b'<REUTERS NEWID="3"><TEXTS/><TEXT TYPE="UNPROC">&#2;Loose copy\n 1 &amp; 2\n</TEXT>'
                      b"</TEXT></REUTERS>", "sgm")
    assert story.body == "Loose copy 1 & 2" and story.headline == ""
    dead = list(parse_record(RawRecord(b'<REUTERS NEWID="4"><TEXT>no close</REUTERS>', ORIGIN, "sgm")))
    assert dead[0].error == "Reuters-21578 element without <TEXT>"


def test_reuters_latin1_byte_is_not_a_dead_letter():
    story = one_story(REUTERS.replace(b"more", b"m\xfcre"), "sgm")
    assert "müre" in story.body


def test_reuters_jsonl_form_matches_sgml_form():
    doc = {"newid": 7, "date_raw": " 5-MAR-1987 09:15:05.40&#5;&#5;F", "title": "COCOA <CC> REVIEW",
           "dateline": "    SALVADOR, Feb 26 - ", "topics": ["cocoa"], "places": ["el-salvador", "usa"],
           "body": "Showers continued & more\nthroughout the week.\n"
                   "    The dry period means the temporao will be late.\n Reuter\n"}
    from_json, from_sgml = one_story(json.dumps(doc)), one_story(REUTERS, "sgm")
    for field in ("story_id", "headline", "body", "source", "published_raw", "place_labels"):
        assert getattr(from_json, field) == getattr(from_sgml, field), field


def test_plain_text_seed_story(shared_data):
    story = one_story((shared_data / "seed" / "000_bf88e37bba94a288.txt").read_bytes(), "txt")
    assert story.section == "Geopolitics"
    assert "Peace Proposal for Ukraine Stays on the Table" in story.headline
    assert story.body.startswith("Russian President Vladimir Putin")
    assert story.body.endswith("realities on the ground.")
    assert story.related_headlines == [
        "WikiLeaks' Julian Assange to be freed after pleading guilty to US Espionage Act charge",
        "Netanyahu says war will continue even if ceasefire deal agreed with Hamas"]
    assert "Netanyahu" not in story.body
    assert story.body.count("\n\n") == 8  # nine paragraphs


def test_plain_text_without_section_or_related():
    story = one_story("A headline\n\nFirst paragraph.\n\nLast paragraph without a stop", "txt")
    assert (story.section, story.headline) == (None, "A headline")
    assert story.body.endswith("Last paragraph without a stop") and story.related_headlines == []


@pytest.mark.parametrize("payload,hint,reason", [
    (b'{"title": "x", "text": ', "json", "malformed JSON"),
    (b'{"title": "", "text": "  "}', "json", "empty story"),
    (b'[1, 2]', None, "must be an object"),
    (b'\xff\xfe{"title": "x"}', "json", "invalid UTF-8"),
    (b'\x00\x01\x02binary', None, "unknown format"),
    (b'<html><body>hi</body></html>', "xml", "unknown XML document type"),
    (b'<rss><channel><item><title>unclosed', "xml", "malformed XML"),
    (b'   ', None, "empty payload"),
])
def test_malformed_payloads_become_dead_letters(payload, hint, reason):
    out = parse(payload, hint)
    assert out and all(isinstance(o, DeadLetter) for o in out)
    assert reason in out[0].error
    assert out[0].stage == "parse"
    assert b"".join(o.raw for o in out) in (payload, b"".join(o.raw for o in out))
    if len(out) == 1:
        assert out[0].raw == payload  # byte for byte


XML_BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<rss><channel><item><title>&lol3;</title><description>x</description></item></channel></rss>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss><channel><item><title>&xxe;</title><description>x</description></item></channel></rss>"""


@pytest.mark.parametrize("payload", [XML_BOMB, EXTERNAL_ENTITY])
def test_unsafe_xml_is_refused(payload):
    (dead,) = parse(payload, "xml")
    assert isinstance(dead, DeadLetter) and "unsafe XML refused" in dead.error
    assert dead.raw == payload


def test_oversized_payload():
    from wirestream.transforms.parse import ParseSettings
    payload = json.dumps({"title": "t", "text": "x" * 2000}).encode()
    (dead,) = parse_record(RawRecord(payload, ORIGIN, "json"), ParseSettings(max_payload_bytes=1000))
    assert isinstance(dead, DeadLetter) and "payload too large" in dead.error and dead.raw == payload


def test_json_array_item_failure_keeps_the_other_items():
    out = parse(json.dumps([{"title": "a", "text": "A."}, {"title": ""}, {"title": "c", "text": "C."}]))
    assert [type(o).__name__ for o in out] == ["Story", "DeadLetter", "Story"]
    assert out[1].origin.item == 1 and json.loads(out[1].raw) == {"title": ""}


@pytest.mark.parametrize("payload,expected", [
    (b'{"a": 1}', "json"), (b"\xef\xbb\xbf[{}]", "json"), (b"<REUTERS NEWID=\"1\">", "sgm"),
    (b"<?xml version='1.0'?><rss/>", "xml"), (b"Headline\n\nBody.", "txt"),
])
def test_sniffing_without_a_hint(payload, expected):
    assert sniff_format(payload) == expected


def test_container_items_carry_their_count():
    out = parse(json.dumps([{"title": "a", "text": "A."}, {"title": ""}]))
    assert [(o.origin.item, o.origin.item_count) for o in out] == [(0, 2), (1, 2)]
    (single,) = parse(json.dumps({"title": "a", "text": "A."}))
    assert (single.origin.item, single.origin.item_count) == (None, None)


def test_empty_container_is_a_dead_letter():
    (dead,) = parse(b"[]")
    assert isinstance(dead, DeadLetter) and "empty JSON array" in dead.error and dead.raw == b"[]"


REUTERS_SENTENCE = ("Royal Dutch/Shell Group <RD.AS> said <Shell U.K. Ltd's> profit rose, "
                    "and 5 < 6 > 4 holds.")


@pytest.mark.parametrize("doc", [
    {"headline": "Shell profit", "body": REUTERS_SENTENCE},
    {"title": "Shell profit", "text": REUTERS_SENTENCE},
    {"uri": "urn:x:2", "headline": "Shell profit", "body_text": REUTERS_SENTENCE},
    {"uri": "urn:x:3", "headlines": [{"role": "main", "value": "Shell profit"}],
     "bodies": [{"role": "main", "contenttype": "text/plain", "value": REUTERS_SENTENCE}]},
])
def test_plain_text_fields_keep_angle_brackets(doc):
    story = one_story(json.dumps(doc))
    assert story.body == REUTERS_SENTENCE


@pytest.mark.parametrize("doc, expected", [
    ({"uri": "urn:x:4", "headline": "H", "body_html": "<p>Shell &lt;RD.AS&gt; &amp;amp; BP</p>"},
     "Shell <RD.AS> &amp; BP"),
    ({"uri": "urn:x:5", "headline": "H",
      "bodies": [{"role": "main", "contenttype": "text/html", "value": "<p>5 &lt; 6</p><p>Two</p>"}]},
     "5 < 6\n\nTwo"),
    ({"headline": "H", "body_html": "<p>AT&amp;T</p>"}, "AT&T"),
    # A field whose format does not say: markup only when it uses HTML's tags.
    ({"headline": "H", "content": "Shell <RD.AS> rose"}, "Shell <RD.AS> rose"),
])
def test_html_fields_are_decoded_exactly_once(doc, expected):
    assert one_story(json.dumps(doc)).body == expected


def test_xml_plain_text_fields_keep_angle_brackets_and_html_fields_decode_once():
    rss = ("<rss><channel><item><title>Shell &lt;RD.AS&gt; &amp;amp; BP</title><guid>g</guid>"
           "<description>&lt;p&gt;Shell &amp;lt;RD.AS&amp;gt; rose&lt;/p&gt;</description>"
           "</item></channel></rss>")
    story = one_story(rss, "xml")
    assert story.headline == "Shell <RD.AS> &amp; BP"  # a plain-text title: XML decoding only
    assert story.body == "Shell <RD.AS> rose"
    atom = ('<entry xmlns="http://www.w3.org/2005/Atom"><id>a</id><title>5 &lt; 6 &gt; 4</title>'
            '<content type="text">Shell &lt;RD.AS&gt; rose</content></entry>')
    story = one_story(atom, "xml")
    assert (story.headline, story.body) == ("5 < 6 > 4", "Shell <RD.AS> rose")


def test_normalising_does_not_decode_again():
    from wirestream.transforms.normalise import normalise_story
    story = one_story(json.dumps({"headline": "AT&amp;T <T>", "body": REUTERS_SENTENCE + " AT&amp;T"}))
    record = normalise_story(story)
    assert record.headline == "AT&amp;T <T>"
    assert record.body == REUTERS_SENTENCE + " AT&amp;T"


def test_plain_text_headline_ending_with_a_full_stop_stays_the_headline(shared_data):
    lines = (shared_data / "seed" / "000_bf88e37bba94a288.txt").read_text(encoding="utf-8").split("\n\n")
    headline = "Putin's peace proposal for Ukraine stays on the table, Kremlin says."
    story = one_story("\n\n".join([lines[0], headline] + lines[2:]), "txt")
    assert (story.section, story.headline) == ("Geopolitics", headline)
    assert story.body.startswith("Russian President Vladimir Putin")


def test_plain_text_short_title_then_a_lead_is_not_a_section():
    lead = "Prices rose. Traders said the rally would last."
    story = one_story(f"Markets rally\n\n{lead}\n\nMore text follows here.", "txt")
    assert (story.section, story.headline, story.body.split("\n\n")[0]) == (None, "Markets rally", lead)


def test_plain_text_headline_with_a_company_mark_is_not_a_section():
    story = one_story("<OXOCO INC> YEAR LOSS\n\nOper shr loss 6.68 dlrs vs loss 9.95 dlrs\n\n"
                      "Oper net loss 5.2 mln vs loss 7.6 mln", "txt")
    assert (story.section, story.headline) == (None, "<OXOCO INC> YEAR LOSS")


def test_plain_text_wire_headline_in_capitals_is_not_a_section():
    lead = "India's first intercontinental-range rocket fell into the Bay of Bengal, officials said."
    story = one_story(f"INDIAN ROCKET LAUNCH FAILS\n\n{lead}\n\nThe launch was watched by the "
                      "prime minister and many officials from the space agency.", "txt")
    assert (story.section, story.headline) == (None, "INDIAN ROCKET LAUNCH FAILS")
    assert story.body.startswith(lead)

# --- limits: data errors, never crashes; the size limit is per story --------------------------

def _rss(items: list[str]) -> bytes:
    return ("<?xml version='1.0'?><rss><channel><title>Wire</title>" + "".join(
        f"<item><guid>g{n}</guid><title>Story {n}</title><description>{text}</description></item>"
        for n, text in enumerate(items)) + "</channel></rss>").encode()


def test_a_feed_larger_than_the_payload_limit_gives_each_story_its_own_limit():
    # 3,000 items of ~2.3 KB: 6.9 MB, over the 5 MiB default limit as a whole
    feed = _rss([f"Body of story {n}. " + "word " * 450 for n in range(3000)])
    assert len(feed) > 5 * 1024 * 1024
    out = list(parse_record(RawRecord(feed, ORIGIN, "xml")))
    assert len(out) == 3000 and all(isinstance(o, Story) for o in out)
    assert all(len(o.raw) < 3000 and o.raw.startswith(b"<item>") for o in out)


def test_one_oversized_story_in_a_feed_is_the_only_dead_letter():
    from wirestream.transforms.parse import ParseSettings
    feed = _rss(["short", "x" * 5000, "short too"])
    out = list(parse_record(RawRecord(feed, ORIGIN, "xml"), ParseSettings(max_payload_bytes=2000)))
    assert [type(o).__name__ for o in out] == ["Story", "DeadLetter", "Story"]
    assert "story too large" in out[1].error and out[1].origin.item == 1
    assert out[1].raw.startswith(b"<item><guid>g1</guid>") and len(out[1].raw) > 5000


def test_a_document_over_the_document_bound_is_refused_before_parsing():
    from wirestream.transforms.parse import ParseSettings
    feed = _rss(["a", "b"])
    (dead,) = parse_record(RawRecord(feed, ORIGIN, "xml"),
                           ParseSettings(max_payload_bytes=50, max_document_bytes=100))
    assert isinstance(dead, DeadLetter) and "payload too large" in dead.error and dead.raw == feed


@pytest.mark.parametrize("payload", [
    b"[" * 100_000 + b"]" * 100_000,  # deeper than Python's stack
    b'{"title": "t", "text": "x", "deep": ' + b"[" * 150 + b"]" * 150 + b"}",  # over our limit
    b'[{"title": "t", "text": "x"}, ' + b"[" * 150 + b"]" * 150 + b"]",
])
def test_deeply_nested_json_is_a_dead_letter(payload):
    for hint in ("json", None):
        out = list(parse_record(RawRecord(payload, ORIGIN, hint)))
        assert len(out) == 1 and isinstance(out[0], DeadLetter)
        assert "nested deeper than 100" in out[0].error and out[0].raw == payload


@pytest.mark.parametrize("depth", [150, 100_000])
def test_deeply_nested_xml_is_a_dead_letter(depth):
    payload = (b"<feed xmlns='http://www.w3.org/2005/Atom'><entry><title>t</title>"
               b"<content type='xhtml'>" + b"<div>" * depth + b"x" + b"</div>" * depth
               + b"</content></entry></feed>")
    (dead,) = parse_record(RawRecord(payload, ORIGIN, "xml"))
    assert isinstance(dead, DeadLetter) and "nested deeper than 100" in dead.error


def test_a_news_message_still_parses_at_a_normal_depth(shared_data):
    specimens = sorted((shared_data / "iptc_newsml_g2_examples").rglob("*.xml"))
    stories = [o for p in specimens for o in parse_record(RawRecord(p.read_bytes(), ORIGIN, "xml"))
               if isinstance(o, Story)]
    assert stories and not [o for p in specimens
                            for o in parse_record(RawRecord(p.read_bytes(), ORIGIN, "xml"))
                            if isinstance(o, DeadLetter) and "nested" in o.error]
