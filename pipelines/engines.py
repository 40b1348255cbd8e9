"""The real engines: pinned versions, where ``make engines`` puts them, and how
the CLI and the tests find them.

    python3 pipelines/engines.py fetch    # what `make engines` runs (idempotent)
    python3 pipelines/engines.py status   # what is there, and what could not be had

Everything lives in one cache directory outside the repository:
``$WIRESTREAM_ENGINES``, else ``${XDG_CACHE_HOME:-~/.cache}/wirestream/engines``.
Apache Kafka (the broker's jars and their runtime dependencies) and Beam's Java
artifacts come from Maven, pinned exactly; Prism is built from Beam's Go module
with ``go install``. An engine the registry does not serve leaves a note
(``<engine>.unavailable``) with the reason, so tests can say why they skip.

Stdlib only, and run as a script: ``make engines`` runs before the project is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

BEAM_VERSION = "2.77.0"  # the apache-beam release pyproject.toml pins
KAFKA_VERSION = "4.1.1"
KAFKA_SCALA = "2.13"
LOG4J_VERSION = "2.24.3"  # what Kafka 4.1.1 itself is built against
FLINK_VERSION = "1.19"  # one that Beam 2.77 supports (1.19, 1.20, 2.0, 2.1, 2.2)

KAFKA = "kafka"
PRISM = "prism"
FLINK_JOB_SERVER = "flink-job-server"
EXPANSION_SERVICE = "io-expansion-service"

# Maven coordinates of the single jars (the job server and expansion service are shaded).
_BEAM_JARS = {
    FLINK_JOB_SERVER: f"org.apache.beam:beam-runners-flink-{FLINK_VERSION}-job-server:{BEAM_VERSION}",
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
    path = _jar_path(FLINK_JOB_SERVER)
    return path if path.is_file() else None


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
             (FLINK_JOB_SERVER, lambda: _fetch_jar(FLINK_JOB_SERVER), "mvn", False),
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
