"""Scraped HTML pages end to end: as archive files, and as payloads on a real broker."""

import json
import shutil
import subprocess
import sys

import pytest

from tests.transforms.io.test_kafka_io import read_topic
from wirestream.transforms.io.archive import list_archive_files

pytestmark = pytest.mark.integration


def wirestream(*args, cwd, timeout=300):
    return subprocess.run([sys.executable, "-m", "wirestream.pipelines.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def pages(shared_data, tmp_path):
    folder = tmp_path / "pages"
    shutil.copytree(shared_data / "html_news_pages", folder)
    (folder / "PROVENANCE.md").unlink()
    (folder / "theverge.com.ios13.html").rename(folder / "theverge.com.ios13.htm")
    return folder


def test_html_and_htm_files_are_archive_files(pages):
    files = list_archive_files(str(pages))
    assert len(files) == 17 and {f.format_hint for f in files} == {"html"}


def test_pages_from_an_archive_become_events_and_dead_letters(pages, tmp_path):
    run = wirestream("run", "--source", str(pages), "--sink", f"jsonl:{tmp_path / 'out'}",
                     cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "read=17 unique=15 duplicates=0 dead_letters=2" in run.stderr
    events = [json.loads(line) for path in (tmp_path / "out").glob("events-*.jsonl")
              for line in path.read_text(encoding="utf-8").splitlines()]
    assert {e["format"] for e in events} == {"html"}
    assert "iOS 13 will fix the FaceTime eye contact problem" in {e["headline"] for e in events}


def test_html_payloads_on_kafka_are_sniffed_and_parsed(kafka_broker, pages, tmp_path):
    kafka = f"kafka://{kafka_broker.bootstrap}"
    produced = wirestream("produce", "--to", f"{kafka}/pages", str(pages), cwd=tmp_path)
    assert produced.returncode == 0, produced.stderr
    run = wirestream("run", "--source", f"{kafka}/pages?start=earliest&stop=end",
                     "--sink", f"{kafka}/page-events", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    events = [json.loads(r.value) for r in read_topic(kafka_broker.bootstrap, "page-events")]
    dead = [json.loads(r.value) for r in read_topic(kafka_broker.bootstrap, "page-events.dlq")]
    assert len(events) == 15 and {e["format"] for e in events} == {"html"}
    assert sorted(d["error"].split(":")[0] for d in dead) == ["not an article"] * 2
    assert {e["published_at"] for e in events} >= {"2019-05-14T12:34:08Z", "2013-06-10T00:00:00Z"}
