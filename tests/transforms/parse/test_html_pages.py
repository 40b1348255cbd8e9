"""Article pages as publishers serve them (../shared/data/html_news_pages/) -> Story.

How each expectation was made, by reading the page's HTML source:
- headline: the page's own og:title (or <title>), with the site's trailing
  labels (" | DW | 19.01.2020") removed;
- published_at: the page's JSON-LD datePublished or article:published_time
  meta, converted to UTC by hand; where the page gives only a day
  (dc.date, JSON-LD "2020-01-14", the date closing a dw.com title) it is that
  day at 00:00 with a "date only" note; heise gives a naive time, read as UTC;
  sueddeutsche has no metadata date, its first <time datetime> is the
  publication ("2019-05-15 05:28:29"; trafilatura's own date there is the
  modification day 2019-05-17);
- language: the page's <html lang> (or og:locale), detection agreeing;
- in_body: a sentence read in the article text of the page;
- not_in_body: text read in the page's navigation, footer, newsletter box,
  related-stories list or comments (none of which is the article).
"""

import pytest

from wirestream.schemas import DeadLetter, Origin, RawRecord, Story, validator
from wirestream.transforms.normalise import normalise_story
from wirestream.transforms.parse import parse_record, sniff_format

ORIGIN = Origin(kind="file", ingested_at="2026-01-01T00:00:00Z", path="page.html")

PAGES = {
    "correctiv.org.zusage.html": dict(
        headline='"Wir haben bereits die Zusage"', published_at="2019-05-14T12:34:08Z", language="de",
        in_body="Insgesamt wären also etwa 1,8 Millionen Euro fällig.",
        not_in_body="Die besten Recherchen per Mail"),
    "dw.com.colonial.html": dict(
        headline="Berlin confronts Germany's colonial past with new initiative",
        published_at="2020-01-19T00:00:00Z", language="en", date_only=True,
        in_body="The most notorious of the three is Carl Peters",
        not_in_body="Berlin Libya conference: A first step toward peace?"),
    "dw.com.uncork.html": dict(
        headline="Uncork the mystery of Germany's Frühburgunder",
        # The title's "10.06.2013" is day first: 10 June (trafilatura's date, 2019-08-01, is a
        # related story's).
        published_at="2013-06-10T00:00:00Z", language="en", date_only=True,
        in_body="Today the Ahr Valley has a reputation for impeccable quality",
        not_in_body="Sour grapes: Climate change pushing wine regions farther north"),
    "franceculture.fr.idees.html": dict(
        headline="Prendre la parole", published_at="2020-01-14T00:00:00Z", language="fr",
        date_only=True,
        in_body="Éric Chauvier souligne la concomitance de leur essor avec la crise de 2008",
        not_in_body="S'abonner à nos newsletters"),
    "futurezone.at.lyft.html": dict(
        headline="Uber-Konkurrent Lyft startet mit Waymo-Robotertaxis in USA",
        published_at="2019-05-08T05:30:23Z", language="de",
        in_body="Lyft verliert mehr als man umsetzt",
        not_in_body="Allgemeine Nutzungsbedingungen"),
    "heise.de.lithium.html": dict(
        headline="Lithium aus dem Schredder", published_at="2019-06-20T07:30:00Z", language="de",
        in_body='"Mit diesem Strom betreiben wir den Schredder", sagt Hanisch.',
        not_in_body="Topthemen:"),
    "mercurynews.com.2023.01.16.letters-1119.html": dict(
        headline="Letters: Coddling criminals | Undermining road | Tax dollars | Recount cost | "
                 "Predicting climate",
        published_at="2023-01-17T00:30:41Z", language="en",
        in_body="I disagree with the notion that local and state governments",
        not_in_body="Get Morning Report and other email newsletters"),
    "nationalgeographic.co.uk.goats.html": dict(
        headline="Ravenous wild goats ruled this island for over a century. Now, it's being reborn.",
        published_at="2020-01-03T09:48:24Z", language="en",
        in_body="The EAG was started in the late 1980s",
        not_in_body="Photo of the Day"),
    "nature.com.telescope.html": dict(
        headline="Gigantic Chinese telescope opens to astronomers worldwide",
        published_at="2019-09-24T00:00:00Z", language="en", date_only=True,
        in_body="also known as Tianyan or 'Eye of Heaven'",
        not_in_body="Daring Chinese telescope is poised to transform astronomy"),
    "phys.org.tool.html": dict(
        headline="Flint flake tool partially covered by birch tar adds to evidence of Neanderthal "
                 "complex thinking",
        published_at="2019-10-22T13:30:34Z", language="en",
        in_body="Prior work has turned up evidence of Neanderthals using birch tar",
        not_in_body="Remember me"),
    "reuters.com.parasite.html": dict(
        headline="'Parasite' scores historic upset at SAG awards, boosting Oscar chances",
        published_at="2020-01-19T12:25:36Z", language="en",
        in_body="DISAPPOINTING NIGHT FOR 'IRISHMAN'",
        not_in_body="Factbox: Key winners at the 2020 Screen Actors Guild Awards"),
    "salon.com.emissions.html": dict(
        headline="Despite everything, U.S. emissions dipped in 2019",
        published_at="2020-01-10T09:00:04Z", language="en",
        in_body="Surging natural gas was the biggest reason for coal's demise.",
        not_in_body="DMCA Policy"),
    "spiegel.de.albtraum.html": dict(
        headline="Ein Albtraum", published_at="2018-12-21T23:00:00Z", language="de",
        in_body="Die Geschichte wird gedruckt.",
        not_in_body="Brutto-Netto-Rechner"),
    "sueddeutsche.de.flixtrain.html": dict(
        headline="Flixbus attackiert Deutsche Bahn", published_at="2019-05-15T05:28:29Z",
        language="de",
        in_body="Stengers Plattform bietet über die Tochter Flixtrain bislang vier Fernstrecken",
        not_in_body="Diskussion zu diesem Artikel auf"),
    "theverge.com.ios13.html": dict(
        headline="iOS 13 will fix the FaceTime eye contact problem",
        published_at="2019-07-03T08:22:07Z", language="en",
        in_body="Notice the warping of the line across both the eyes and nose.",
        not_in_body="Sign up for the newsletter"),
}

# Pages with no article in the HTML as served.
NOT_ARTICLES = {
    # An AngularJS template: headline and text are "{{...}}" placeholders filled in by script.
    "lanouvellerepublique.fr.martin.html": "unrendered template",
    # The article text is loaded by script; the page as served holds one photo caption.
    "scmp.com.playbook.html": "151 characters of main text",
}


def parse_page(payload: bytes, hint="html"):
    return list(parse_record(RawRecord(payload, ORIGIN, hint)))


def test_every_page_is_covered(shared_data):
    names = {p.name for p in (shared_data / "html_news_pages").glob("*.html")}
    assert names == set(PAGES) | set(NOT_ARTICLES)


@pytest.mark.parametrize("name", sorted(PAGES))
def test_article_page_becomes_a_story(shared_data, name):
    expected = PAGES[name]
    out = parse_page((shared_data / "html_news_pages" / name).read_bytes())
    assert len(out) == 1 and isinstance(out[0], Story), out
    story = out[0]
    assert story.format == "html" and story.url and story.url.startswith("https://")
    record = normalise_story(story)
    assert record.headline == expected["headline"]
    assert record.published_at == expected["published_at"]
    assert any("date only" in q for q in record.quality) == expected.get("date_only", False)
    assert record.language == expected["language"]
    assert expected["in_body"] in record.body
    assert expected["not_in_body"] not in record.body
    assert not record.body.startswith(record.headline)
    assert list(validator("event_record").iter_errors(record.to_dict())) == []


@pytest.mark.parametrize("name", sorted(NOT_ARTICLES))
def test_page_without_an_article_is_a_dead_letter(shared_data, name):
    payload = (shared_data / "html_news_pages" / name).read_bytes()
    out = parse_page(payload)
    assert len(out) == 1 and isinstance(out[0], DeadLetter)
    assert out[0].error.startswith("not an article") and NOT_ARTICLES[name] in out[0].error
    assert out[0].raw == payload


@pytest.mark.parametrize("payload, reason", [
    (b"<html><head><title>Home</title></head><body><nav><a href='/a'>World</a> "
     b"<a href='/b'>Sport</a></nav></body></html>", "not an article"),
    (b"<!DOCTYPE html><html><head><title>Latest news</title></head><body><ul>" + b"".join(
        b"<li><a href='/s%d'>Story number %d of the day</a></li>" % (i, i) for i in range(30))
     + b"</ul></body></html>", "not an article"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "malformed HTML"),
    (b"just some words, no markup at all", "malformed HTML"),
])
def test_non_article_or_malformed_html_is_a_dead_letter(payload, reason):
    out = parse_page(payload)
    assert len(out) == 1 and isinstance(out[0], DeadLetter)
    assert reason in out[0].error and out[0].raw == payload and out[0].stage == "parse"


def test_html_payload_without_a_hint_is_sniffed_as_a_page(shared_data):
    payload = (shared_data / "html_news_pages" / "heise.de.lithium.html").read_bytes()
    assert sniff_format(payload) == "html"
    assert sniff_format(b"<?xml version='1.0'?><rss/>") == "xml"
    story = parse_page(payload, hint=None)[0]
    assert isinstance(story, Story) and story.headline == "Lithium aus dem Schredder"
