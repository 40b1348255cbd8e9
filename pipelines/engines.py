"""The real engines: pinned versions, where ``make engines`` puts them, and how
the CLI and the tests find them.

    python3 pipelines/engines.py fetch    # what `make engines` runs (idempotent)
    python3 pipelines/engines.py status   # what is there, and what could not be had

Everything lives in one cache directory outside the repository:
``$WIRESTREAM_ENGINES``, else ``${XDG_CACHE_HOME:-~/.cache}/wirestream/engines``.
Apache Kafka (the broker's jars and their runtime dependencies) and Beam's Java
artifacts come from Maven, pinned exactly; Prism is built from Beam's Go module
with ``go install``. Beam's Flink job server is assembled from Maven artifacts
(``_flink_job_server_pom``): Beam publishes it as one shaded jar, which the registry
here does not serve for any release, so its parts are fetched instead and a small
launcher jar names them in its manifest. An engine the registry does not serve leaves a note
(``<engine>.unavailable``) with the reason, so tests can say why they skip.

Stdlib only, and run as a script: ``make engines`` runs before the project is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Optional

BEAM_VERSION = "2.77.0"  # the apache-beam release pyproject.toml pins
KAFKA_VERSION = "4.1.1"
KAFKA_SCALA = "2.13"
LOG4J_VERSION = "2.24.3"  # what Kafka 4.1.1 itself is built against
FLINK_VERSION = "1.19"  # one that Beam 2.77 supports (1.19, 1.20, 2.0, 2.1, 2.2)
# The Flink job server, assembled (see _flink_job_server_pom). The newest Flink runner
# library served is 2.70.0 (Flink 1.19.0 with it); the one artifact it needs that is not
# served at 2.70.0, beam-runners-java-job-service (JobServerDriver, JobInvoker,
# PortablePipelineRunner: package org.apache.beam.runners.jobsubmission), is taken at
# 2.65.0, whose classes and signatures the 2.70 runner uses are the same.
FLINK_RUNNER_BEAM_VERSION = "2.70.0"
JOB_SERVICE_BEAM_VERSION = "2.65.0"
SLF4J_VERSION = "2.0.16"  # the slf4j-api the runner library depends on; slf4j-simple logs to stderr
FLINK_JOB_SERVER_MAIN = "org.apache.beam.runners.flink.FlinkJobServerDriver"

KAFKA = "kafka"
PRISM = "prism"
FLINK_JOB_SERVER = "flink-job-server"
EXPANSION_SERVICE = "io-expansion-service"

# Maven coordinates of the single jars (the expansion service is shaded).
_BEAM_JARS = {
    EXPANSION_SERVICE: f"org.apache.beam:beam-sdks-java-io-expansion-service:{BEAM_VERSION}",
}
_PRISM_MODULE = "github.com/apache/beam/sdks/v2/go/cmd/prism"


def engines_dir() -> Path:
    explicit = os.environ.get("WIRESTREAM_ENGINES")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "wirestream" / "engines"


def _kafka_libs() -> Path:
    return engines_dir() / f"kafka-{KAFKA_VERSION}" / "libs"


def _prism_path() -> Path:
    return engines_dir() / f"prism-v{BEAM_VERSION}" / "prism"


def _flink_job_server_dir() -> Path:
    return engines_dir() / f"flink-{FLINK_VERSION}-job-server-{FLINK_RUNNER_BEAM_VERSION}"


def _flink_job_server_path() -> Path:
    """The launcher jar; its manifest's Class-Path names every jar in ``libs/`` beside it."""
    return _flink_job_server_dir() / (
        f"beam-runners-flink-{FLINK_VERSION}-job-server-{FLINK_RUNNER_BEAM_VERSION}.jar")


def _jar_path(engine: str) -> Path:
    coordinates = _BEAM_JARS[engine]
    _, artifact, version = coordinates.split(":")
    return engines_dir() / f"{artifact}-{version}.jar"


def _done_marker(directory: Path) -> Path:
    return directory / ".complete"


def kafka_classpath() -> Optional[str]:
    """The broker's class path (``libs/*``), or None when not fetched."""
    libs = _kafka_libs()
    return str(libs / "*") if _done_marker(libs).is_file() else None


def prism_binary() -> Optional[Path]:
    path = _prism_path()
    return path if path.is_file() and os.access(path, os.X_OK) else None


def flink_job_server_jar() -> Optional[Path]:
    """The job server to run as ``java -jar``, or None when not (completely) assembled."""
    path = _flink_job_server_path()
    return path if path.is_file() and _done_marker(path.parent).is_file() else None


def expansion_service_jar() -> Optional[Path]:
    path = _jar_path(EXPANSION_SERVICE)
    return path if path.is_file() else None


def java_binary() -> Optional[str]:
    return shutil.which("java")


def unavailable_reason(engine: str) -> Optional[str]:
    """Why ``make engines`` could not fetch ENGINE, if it tried and failed."""
    note = engines_dir() / f"{engine}.unavailable"
    return note.read_text().strip() if note.is_file() else None


def missing_reason(engine: str) -> str:
    """One line for a skip or a failure: why ENGINE is not here."""
    return unavailable_reason(engine) or (
        f"{engine} is not fetched into {engines_dir()} (run `make engines`)")


def runner_defaults(argv: list[str]) -> list[str]:
    """Beam options that point a Prism or Flink run at the fetched engines, so
    Beam downloads nothing at run time. An explicit option wins."""
    def given(name: str) -> bool:
        return any(a == f"--{name}" or a.startswith(f"--{name}=") for a in argv)

    runner = next((argv[i + 1] if a == "--runner" and i + 1 < len(argv) else a.split("=", 1)[1]
                   for i, a in enumerate(argv) if a == "--runner" or a.startswith("--runner=")),
                  None)
    extra = []
    if runner in ("PrismRunner", "prism") and not given("prism_location"):
        if (binary := prism_binary()) is not None:
            extra.append(f"--prism_location={binary}")
    if runner in ("FlinkRunner", "flink") and not given("flink_job_server_jar"):
        if (jar := flink_job_server_jar()) is not None:
            extra.append(f"--flink_job_server_jar={jar}")
    return extra


# -- fetching (make engines) ------------------------------------------------------

def _kafka_pom() -> str:
    def dependency(group: str, artifact: str, version: str) -> str:
        return (f"<dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
                f"<version>{version}</version></dependency>")
    # The broker logs through SLF4J 1.7 (as Kafka has it); log4j-slf4j-impl routes it to log4j2.
    return ("<project xmlns=\"http://maven.apache.org/POM/4.0.0\"><modelVersion>4.0.0</modelVersion>"
            "<groupId>wirestream.engines</groupId><artifactId>kafka-broker</artifactId>"
            "<version>0</version><packaging>pom</packaging><dependencies>"
            + dependency("org.apache.kafka", f"kafka_{KAFKA_SCALA}", KAFKA_VERSION)
            + dependency("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION)
            + "</dependencies></project>")


def _flink_job_server_pom() -> str:
    """The job server's parts: the Flink runner library with its runtime dependencies
    (Flink, Beam's model, core, fn-execution, vendored gRPC and Guava), except the job
    service at the runner's version, which is not served; that one at
    JOB_SERVICE_BEAM_VERSION, without its own dependencies (the runner's win), and the
    expansion service it starts, at the runner's version. slf4j-simple gives the logs."""
    def dependency(group: str, artifact: str, version: str, exclusions: str = "") -> str:
        return (f"<dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
                f"<version>{version}</version>"
                + (f"<exclusions>{exclusions}</exclusions>" if exclusions else "")
                + "</dependency>")
    def exclusion(group: str, artifact: str) -> str:
        return f"<exclusion><groupId>{group}</groupId><artifactId>{artifact}</artifactId></exclusion>"
    beam = "org.apache.beam"
    return ("<project xmlns=\"http://maven.apache.org/POM/4.0.0\"><modelVersion>4.0.0</modelVersion>"
            "<groupId>wirestream.engines</groupId><artifactId>flink-job-server</artifactId>"
            "<version>0</version><packaging>pom</packaging><dependencies>"
            + dependency(beam, f"beam-runners-flink-{FLINK_VERSION}", FLINK_RUNNER_BEAM_VERSION,
                         exclusion(beam, "beam-runners-java-job-service"))
            + dependency(beam, "beam-runners-java-job-service", JOB_SERVICE_BEAM_VERSION,
                         exclusion("*", "*"))
            + dependency(beam, "beam-sdks-java-expansion-service", FLINK_RUNNER_BEAM_VERSION)
            + dependency("org.slf4j", "slf4j-simple", SLF4J_VERSION)
            + "</dependencies></project>")


def _manifest(main_class: str, class_path: list[str]) -> bytes:
    """A jar manifest: lines of at most 72 bytes, continued by a leading space."""
    def wrap(line: str) -> bytes:
        data = line.encode()
        pieces = [data[:72]]
        data = data[72:]
        while data:
            pieces.append(b" " + data[:71])
            data = data[71:]
        return b"\r\n".join(pieces)
    lines = ["Manifest-Version: 1.0", f"Main-Class: {main_class}",
             "Class-Path: " + " ".join(class_path)]
    return b"\r\n".join(wrap(line) for line in lines) + b"\r\n\r\n"


def _write_launcher_jar(path: Path, main_class: str, libs: Path) -> None:
    """A jar holding only a manifest: its Main-Class, and a Class-Path of the jars
    in LIBS relative to the jar (so ``java -jar`` works from anywhere)."""
    relative = os.path.relpath(libs, path.parent).replace(os.sep, "/")
    class_path = [f"{relative}/{jar.name}" for jar in sorted(libs.glob("*.jar"))]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("META-INF/MANIFEST.MF", _manifest(main_class, class_path))


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          **kwargs)


def _failure(result: subprocess.CompletedProcess) -> str:
    output = result.stdout + result.stderr
    if "not found in" in output or "Could not find artifact" in output:
        return "the Maven registry this machine reaches does not serve it"
    lines = [line for line in output.splitlines() if "ERROR" in line or "error" in line]
    return (lines[0] if lines else f"exit code {result.returncode}").strip()[:300]


def _fetch_kafka() -> str:
    libs = _kafka_libs()
    if _done_marker(libs).is_file():
        return f"present: {libs}"
    with tempfile.TemporaryDirectory() as work:
        pom = Path(work) / "pom.xml"
        pom.write_text(_kafka_pom())
        staging = Path(work) / "libs"
        result = _run(["mvn", "-q", "-B", "-Dstyle.color=never", "-f", str(pom), "dependency:copy-dependencies",
                       f"-DoutputDirectory={staging}", "-DincludeScope=runtime"])
        if result.returncode != 0:
            raise EngineFetchError(f"Maven could not fetch Apache Kafka {KAFKA_VERSION}: "
                                   + _failure(result))
        libs.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(libs, ignore_errors=True)
        shutil.move(str(staging), libs)
    _done_marker(libs).write_text(f"org.apache.kafka:kafka_{KAFKA_SCALA}:{KAFKA_VERSION}\n")
    return f"fetched: {libs}"


def _fetch_prism() -> str:
    path = _prism_path()
    if prism_binary() is not None:
        return f"present: {path}"
    with tempfile.TemporaryDirectory() as work:
        result = _run(["go", "install", f"{_PRISM_MODULE}@v{BEAM_VERSION}"],
                      env={**os.environ, "GOBIN": work})
        if result.returncode != 0:
            raise EngineFetchError(f"go install {_PRISM_MODULE}@v{BEAM_VERSION} failed: "
                                   + _failure(result))
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(Path(work) / "prism"), path)
    return f"built: {path}"


def _fetch_flink_job_server() -> str:
    directory = _flink_job_server_dir()
    if flink_job_server_jar() is not None:
        return f"present: {_flink_job_server_path()}"
    directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory.parent) as work:
        pom = Path(work) / "pom.xml"
        pom.write_text(_flink_job_server_pom())
        staging = Path(work) / directory.name
        result = _run(["mvn", "-q", "-B", "-Dstyle.color=never", "-f", str(pom),
                       "dependency:copy-dependencies", f"-DoutputDirectory={staging / 'libs'}",
                       "-DincludeScope=runtime"])
        if result.returncode != 0:
            raise EngineFetchError(
                f"Maven could not fetch the Flink job server's parts (beam-runners-flink-"
                f"{FLINK_VERSION} {FLINK_RUNNER_BEAM_VERSION}, beam-runners-java-job-service "
                f"{JOB_SERVICE_BEAM_VERSION}): " + _failure(result))
        _write_launcher_jar(staging / _flink_job_server_path().name, FLINK_JOB_SERVER_MAIN,
                            staging / "libs")
        shutil.rmtree(directory, ignore_errors=True)
        shutil.move(str(staging), directory)
    _done_marker(directory).write_text(
        f"org.apache.beam:beam-runners-flink-{FLINK_VERSION}:{FLINK_RUNNER_BEAM_VERSION}\n"
        f"org.apache.beam:beam-runners-java-job-service:{JOB_SERVICE_BEAM_VERSION}\n")
    return f"assembled: {_flink_job_server_path()}"


def _fetch_jar(engine: str) -> str:
    path = _jar_path(engine)
    if path.is_file():
        return f"present: {path}"
    with tempfile.TemporaryDirectory() as work:
        result = _run(["mvn", "-q", "-B", "-Dstyle.color=never", "dependency:copy", f"-Dartifact={_BEAM_JARS[engine]}",
                       f"-DoutputDirectory={work}"])
        if result.returncode != 0:
            raise EngineFetchError(f"Maven could not fetch {_BEAM_JARS[engine]}: "
                                   + _failure(result))
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(next(Path(work).glob("*.jar"))), path)
    return f"fetched: {path}"


class EngineFetchError(RuntimeError):
    pass


def fetch() -> int:
    """Fetch every engine. Exit 1 when Kafka or Prism cannot be had (or Maven or
    Go is missing). Beam's Java artifacts are not served for every release by
    every registry: one that cannot be had is noted with the reason
    (``unavailable_reason``) and its tests skip saying so."""
    steps = [(KAFKA, _fetch_kafka, "mvn", True), (PRISM, _fetch_prism, "go", True),
             (FLINK_JOB_SERVER, _fetch_flink_job_server, "mvn", False),
             (EXPANSION_SERVICE, lambda: _fetch_jar(EXPANSION_SERVICE), "mvn", False)]
    engines_dir().mkdir(parents=True, exist_ok=True)
    status = 0
    for engine, step, tool, required in steps:
        note = engines_dir() / f"{engine}.unavailable"
        if shutil.which(tool) is None:
            print(f"{engine}: needs {tool}, which is not installed", file=sys.stderr, flush=True)
            status = 1
            continue
        try:
            print(f"{engine}: {step()}", flush=True)
            note.unlink(missing_ok=True)
        except EngineFetchError as exc:
            note.write_text(f"{exc}\n")
            print(f"{engine}: NOT AVAILABLE: {exc}", file=sys.stderr, flush=True)
            status = 1 if required else status
    return status


def status() -> int:
    found = {KAFKA: kafka_classpath(), PRISM: prism_binary(),
             FLINK_JOB_SERVER: flink_job_server_jar(), EXPANSION_SERVICE: expansion_service_jar()}
    for engine, where in found.items():
        print(f"{engine}: {where if where else 'missing: ' + missing_reason(engine)}")
    return 0


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "status"
    if command not in ("fetch", "status"):
        print("usage: python3 pipelines/engines.py fetch|status", file=sys.stderr)
        sys.exit(2)
    sys.exit(fetch() if command == "fetch" else status())
