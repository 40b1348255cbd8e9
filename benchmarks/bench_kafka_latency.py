"""Latency of a live streaming run: a story produced to Kafka while
`wirestream run` reads it (stop=never) -> its record on the sink topic.

    python benchmarks/bench_kafka_latency.py [--rates 100,500,2000] [--seconds 25]
        [--sustain 60] [--partitions 4] [--startup 180] [-- RUN OPTIONS]

Starts its own broker (Apache Kafka after `make engines`, else Tansu) on a free port with an input
topic of PARTITIONS partitions, starts the run (the CLI's streaming local
runner unless RUN OPTIONS name a --runner), waits (up to STARTUP seconds) until
the warm-up stories come through, then produces real Reuters-21578 stories (cycled) at each steady
rate for SECONDS and prints, per rate: median and p99 latency (the time the
record was seen on the output topic or its dead-letter topic - its Kafka
timestamp, set when it was produced), how many arrived, whether lag grew
(median of the last fifth against the first fifth), the run's CPU use (its
process and the processes it started, such as a job server), and
the consumer group's committed offsets while running. The highest rate whose
median stayed under 2 s without growing lag is then held for SUSTAIN
seconds. Finally the run is stopped with SIGINT and the time to exit printed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.datasets import data_dir  # noqa: E402

from wirestream.pipelines.kafka_commands import LocalBroker, local_broker  # noqa: E402
from wirestream.pipelines.local_runner import STREAMING_LOCAL_RUNNER  # noqa: E402
from wirestream.transforms.io.archive import list_archive_files, read_archive_file  # noqa: E402

INPUT, OUTPUT, GROUP = "stories", "events", "bench"
TARGET_MEDIAN_S = 2.0
GROWING_LAG = 1.5  # last fifth's median over the first fifth's (and at least 0.5 s more)
GRACE_S = 20.0  # after producing stops, how long stragglers may still arrive
PACE_S = 0.01  # the producer sends each 10 ms's share at once



def reuters_payloads() -> list[bytes]:
    corpus = data_dir() / "reuters21578" / "reuters21578.jsonl.gz"
    return [raw.payload for archive in list_archive_files(str(corpus))
            for raw in read_archive_file(archive)]


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live descendants (Linux /proc): a job
    runner (Prism, Flink's job server) does the work in a child process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = [int(c) for task in Path(f"/proc/{pid}/task").iterdir()
                    for c in (task / "children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):  # exited meanwhile
        return 0.0
    return ((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            + sum(cpu_seconds(child) for child in children))


@dataclass
class StepResult:
    rate: int
    seconds: float
    produced: int
    latencies: list[float]  # in production order
    cpu: float
    committed: int  # of the produced records, how many the group had committed

    def line(self) -> str:
        arrived = sorted(self.latencies)
        if not arrived:
            return (f"{self.rate:>6}/s x {self.seconds:.0f} s: produced {self.produced}, "
                    "none reached the sink while the run was live")
        first, last = self.first_and_last_fifth
        return (f"{self.rate:>6}/s x {self.seconds:.0f} s: arrived {len(arrived)}/{self.produced}, "
                f"median {statistics.median(arrived):.3f} s, p99 {percentile(arrived, 0.99):.3f} s, "
                f"max {arrived[-1]:.3f} s; lag first/last fifth {first:.2f}/{last:.2f} s"
                f"{' (GROWING)' if self.lag_grows else ''}; run CPU {self.cpu / self.seconds:.0%} "
                f"of a core; committed while running {self.committed}/{self.produced}")

    @property
    def first_and_last_fifth(self) -> tuple[float, float]:
        """Median latency of the first and of the last fifth produced."""
        fifth = max(1, len(self.latencies) // 5)
        return statistics.median(self.latencies[:fifth]), statistics.median(self.latencies[-fifth:])

    @property
    def lag_grows(self) -> bool:
        first, last = self.first_and_last_fifth
        return last > GROWING_LAG * first and last - first > 0.5

    @property
    def meets_target(self) -> bool:
        return (len(self.latencies) == self.produced and not self.lag_grows
                and statistics.median(self.latencies) <= TARGET_MEDIAN_S)


class Bench:
    def __init__(self, broker: LocalBroker, partitions: int):
        from kafka import KafkaConsumer, KafkaProducer, TopicPartition
        from kafka.admin import KafkaAdminClient, NewTopic
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        admin.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=1)
                             for t in (INPUT, OUTPUT, f"{OUTPUT}.dlq")])
        admin.close()
        self.bootstrap = broker.bootstrap
        self.producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
        self.consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
        self.inputs = [TopicPartition(INPUT, p) for p in range(partitions)]
        self.consumer.assign([TopicPartition(t, p) for t in (OUTPUT, f"{OUTPUT}.dlq")
                              for p in range(partitions)])
        self.consumer.seek_to_end()
        self.group = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=GROUP,
                                   enable_auto_commit=False)
        self.arrived: dict[tuple[int, int], float] = {}  # input (partition, offset) -> latency

    def close(self) -> None:
        """Before the broker stops: a client left open reconnects to it, and logs each refusal."""
        self.producer.close(timeout=5)
        self.consumer.close()
        self.group.close()

    def collect(self, timeout_ms: int = 50) -> None:
        now = time.time()
        for batch in self.consumer.poll(timeout_ms=timeout_ms, max_records=5000).values():
            for record in batch:
                origin = json.loads(record.value).get("origin", {})
                if origin.get("topic") != INPUT:
                    continue
                produced = datetime.fromisoformat(origin["timestamp"].replace("Z", "+00:00"))
                self.arrived.setdefault((origin["partition"], origin["offset"]),
                                        now - produced.timestamp())

    def committed(self) -> dict[int, int]:
        """The group's committed offset (the next to read) per input partition."""
        return {tp.partition: self.group.committed(tp) or 0 for tp in self.inputs}

    def produce(self, payloads, rate: int, seconds: float) -> list:
        """Sends RATE payloads a second for SECONDS from a thread; returns the
        send futures in order (each resolves to the record's partition/offset)."""
        futures: list = []
        total = int(rate * seconds)

        def send():
            start = time.monotonic()
            while len(futures) < total:
                due = min(total, int((time.monotonic() - start) * rate) + 1)
                while len(futures) < due:
                    futures.append(self.producer.send(INPUT, next(payloads)))
                time.sleep(PACE_S)
            self.producer.flush()

        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        while thread.is_alive():
            self.collect()
        return futures

    def step(self, run: subprocess.Popen, payloads, rate: int, seconds: float,
             grace: float = GRACE_S) -> StepResult:
        cpu_before = cpu_seconds(run.pid)
        futures = self.produce(payloads, rate, seconds)
        cpu = cpu_seconds(run.pid) - cpu_before
        keys = [(m.partition, m.offset) for m in (f.get(timeout=30) for f in futures)]
        deadline = time.monotonic() + grace
        while (time.monotonic() < deadline and run.poll() is None
               and not all(k in self.arrived for k in keys)):
            self.collect()
        self.collect(timeout_ms=1000)  # the commit follows the write by a bundle
        committed = self.committed()
        return StepResult(rate, seconds, len(keys),
                          [self.arrived[k] for k in keys if k in self.arrived], cpu,
                          sum(offset < committed.get(partition, 0) for partition, offset in keys))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,500,2000", help="stories/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=25.0, help="how long each rate is held")
    parser.add_argument("--sustain", type=float, default=60.0,
                        help="hold the highest rate that met the target this long (0: skip)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--startup", type=float, default=180.0,
                        help="how long the warm-up stories may take to arrive (a Flink job "
                             "server and its job start in about 45 s)")
    parser.add_argument("run_options", nargs="*", help="extra options for wirestream run")
    args = parser.parse_args()
    run_options = list(args.run_options)
    if not any(o.split("=")[0] == "--runner" for o in run_options):
        run_options += ["--runner", STREAMING_LOCAL_RUNNER]
    payloads = reuters_payloads()
    print(f"{len(payloads)} Reuters-21578 stories, cycled; input topic of {args.partitions} "
          f"partitions; wirestream run {' '.join(run_options)}")
    stories = itertools.cycle(payloads)

    with local_broker() as broker:
        print(f"broker: {broker.engine}")
        bench = Bench(broker, args.partitions)
        kafka = f"kafka://{broker.bootstrap}"
        run = subprocess.Popen(
            [sys.executable, "-m", "wirestream.pipelines.cli", "run", "--source",
             f"{kafka}/{INPUT}?group={GROUP}&start=earliest", "--sink", f"{kafka}/{OUTPUT}",
             *run_options], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True)  # its own process group: a job server it started goes with it
        try:
            # Start-up (Beam, a job server, DoFn set-up, clients): the rates are measured
            # only once every warm-up story has come through.
            warmup = bench.step(run, stories, 2, 10.0, grace=args.startup)
            print(f"warm-up (the run starting): {warmup.line()}", flush=True)
            if len(warmup.latencies) < warmup.produced:
                print(f"the run exited {run.returncode} before its first stories arrived"
                      if run.poll() is not None else
                      f"the run did not start within {args.startup:.0f} s")
                return 1
            results = []
            for rate in (int(r) for r in args.rates.split(",")):
                results.append(bench.step(run, stories, rate, args.seconds))
                print(results[-1].line(), flush=True)
            fastest = max((r for r in results if r.meets_target), key=lambda r: r.rate, default=None)
            if fastest and args.sustain > 0:
                sustained = bench.step(run, stories, fastest.rate, args.sustain)
                print(f"sustained: {sustained.line()}")
        finally:
            stopping = time.monotonic()
            run.send_signal(signal.SIGINT)
            try:
                run.wait(timeout=60)
                err = run.stderr.read().strip().splitlines()
                print(f"SIGINT: the run exited {run.returncode} after "
                      f"{time.monotonic() - stopping:.1f} s; {err[-1:]}")
                if run.returncode:  # why it failed: its own error lines, the end of its log
                    print("\n".join([line for line in err[:-10] if line.startswith("wirestream:")]
                                    + err[-10:]))
            except subprocess.TimeoutExpired:
                # The whole group: killed alone, the run would leave a job server (Flink's JVM) running.
                os.killpg(run.pid, signal.SIGKILL)
                run.wait()
                print("SIGINT: the run did not stop within 60 s (killed, with what it started)")
            bench.close()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("WIRESTREAM_LOG_LEVEL", "ERROR")
    sys.exit(main())
