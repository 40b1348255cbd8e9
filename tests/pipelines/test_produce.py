"""`wirestream produce` reports every record it could not send and goes on."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.transforms.io.test_kafka_io import read_topic

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def produce(*args):
    return subprocess.run([sys.executable, "-m", "wirestream.pipelines.cli", "produce", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=180)


def story(n: int, body: str = "") -> bytes:
    return json.dumps({"id": f"s{n}", "title": f"Story {n}",
                       "body": body or f"Text of story {n}."}).encode()


def test_records_the_broker_client_refuses_are_reported_and_the_rest_are_sent(kafka_broker, tmp_path):
    lines = [story(0), story(1, "x" * 5000), story(2), story(3), story(4, "y" * 6000), story(5)]
    (tmp_path / "in.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    proc = produce("--to", f"kafka://{kafka_broker.bootstrap}/wires", str(tmp_path / "in.jsonl"),
                   "--kafka-config", "max_request_size=2000", "--quiet")
    assert proc.returncode == 1, proc.stderr
    assert "pipeline failed" not in proc.stderr
    not_sent = [line for line in proc.stderr.splitlines() if "not sent" in line]
    assert len(not_sent) == 2
    assert "in.jsonl:2" in not_sent[0] and "in.jsonl:5" in not_sent[1]
    assert all("MessageSizeTooLarge" in line for line in not_sent)
    assert "2 of 6 records could not be sent" in proc.stderr
    assert proc.stdout.startswith("produced 4 messages")
    sent = [json.loads(r.value)["id"] for r in read_topic(kafka_broker.bootstrap, "wires")]
    assert sorted(sent) == ["s0", "s2", "s3", "s5"]


def test_damaged_and_hostile_files_are_reported_not_fatal(kafka_broker, tmp_path):
    whole = gzip.compress(b"".join(story(n) + b"\n" for n in range(50)))
    (tmp_path / "cut.jsonl.gz").write_bytes(whole[:len(whole) // 2])
    (tmp_path / "deep.json").write_bytes(b"[" * 100_000 + b"]" * 100_000)
    proc = produce("--to", f"kafka://{kafka_broker.bootstrap}/damaged", str(tmp_path), "--quiet")
    assert proc.returncode == 1, proc.stderr
    assert "RecursionError" not in proc.stderr and "Traceback" not in proc.stderr
    (cut,) = [line for line in proc.stderr.splitlines() if "not sent" in line]
    assert "cut.jsonl.gz" in cut and "truncated gzip" in cut
    sent = read_topic(kafka_broker.bootstrap, "damaged")
    # the stories before the cut, and the deep document as one message (run dead-letters it)
    assert len(sent) == int(proc.stdout.split()[1]) > 10
    assert b"[" * 1000 in b"".join(r.value for r in sent)
