"""The pipeline on Beam's Flink runner, embedded (the job server's own Flink
cluster), parallelism 2. Needs Java and the job server that `make engines`
assembles from Maven (Beam's Flink runner 2.70.0 with job service 2.65.0, run by
the 2.77 SDK); skipped with the reason where its parts cannot be had, so
`-m "not flink"` leaves these out of a quick loop."""

import json
import queue
import re
import subprocess
import threading
import time

import pytest

from wirestream.pipelines import engines
from tests.pipelines.test_cli import summary_of, wirestream

pytestmark = [pytest.mark.flink, pytest.mark.integration, pytest.mark.slow]


def test_the_assembled_job_server_starts_with_java_jar(flink_job_server):
    """`java -jar` (as Beam's FlinkRunner runs it) loads the driver from the parts the
    launcher jar's manifest names, and serves the job, artifact and expansion services."""
    proc = subprocess.Popen([engines.java_binary(), "-jar", str(flink_job_server),
                             "--job-port=0", "--artifact-port=0", "--expansion-port=0",
                             "--flink-master=[local]"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
    seen = []
    try:
        deadline = time.monotonic() + 60
        while not any("Job server now running" in line for line in seen):
            assert proc.poll() is None, "".join(seen)[-3000:]
            assert time.monotonic() < deadline, "".join(seen)[-3000:]
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                pass
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    started = "".join(seen)
    for service in ("JobService", "ArtifactStagingService", "Java ExpansionService"):
        assert re.search(rf"{service} started on localhost:\d+", started), started


def _records(directory):
    records = [json.loads(line) for f in sorted(directory.glob("*.jsonl")) for line in f.open()]
    return sorted((r["event_id"], r["cluster_id"], r["is_duplicate"], r["duplicate_of"],
                   r["published_at"], r["language"], json.dumps(r["tags"], sort_keys=True))
                  for r in records)


def test_the_whole_reuters_corpus_on_flink_equals_the_local_runner(flink_job_server, shared_data,
                                                                   tmp_path):
    source = str(shared_data / "reuters21578" / "original" / "*.sgm")
    local = wirestream("run", "--source", source, "--sink", f"jsonl:{tmp_path / 'local'}")
    assert local.returncode == 0, local.stderr
    flink = wirestream("run", "--source", source, "--sink", f"jsonl:{tmp_path / 'flink'}",
                       "--runner", "FlinkRunner", "--flink_master=[local]", "--parallelism", "2",
                       "--environment_type", "LOOPBACK")
    assert flink.returncode == 0, flink.stderr[-3000:]
    assert summary_of(flink) == summary_of(local)
    assert _records(tmp_path / "flink") == _records(tmp_path / "local")
