"""No secret is ever printed: every mode of the command, everything it writes to
stdout and stderr, with logs at DEBUG, is searched for the secret."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "archive" / "seed-story.txt"
SECRET = "Sup3r-s3cret-" + uuid.uuid4().hex[:8]
SERVER = os.environ.get("WIRESTREAM_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def wirestream(*args, env=None, timeout=300):
    environment = {**os.environ, "WIRESTREAM_LOG_LEVEL": "DEBUG", **(env or {})}
    return subprocess.run([sys.executable, "-m", "wirestream.pipelines.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, env=environment)


def assert_never_printed(proc, secret=SECRET):
    printed = proc.stdout + proc.stderr
    assert printed.strip(), "nothing printed: the test would prove nothing"
    assert secret not in printed, printed[max(0, printed.find(secret) - 300):][:600]


def pg_url(password_in: str, table: str, database: str = "test") -> str:
    host = SERVER.split("@", 1)[1].split("/", 1)[0]
    if password_in == "userinfo":
        return f"postgresql://postgres:{SECRET}@{host}/{database}?table={table}"
    return f"postgresql://postgres@{host}/{database}?table={table}&password={SECRET}"


@pytest.fixture
def postgres():
    try:
        psycopg.connect(SERVER, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"no PostgreSQL: {exc}")
        pytest.skip(f"no PostgreSQL: {exc}")
    table = f"wirestream_secret_{uuid.uuid4().hex[:10]}"
    yield table
    with psycopg.connect(SERVER, autocommit=True) as connection:
        connection.execute(f"DROP TABLE IF EXISTS {table}, {table}_dead_letters")


@pytest.mark.parametrize("password_in", ["userinfo", "query"])
def test_dry_run_masks_sink_passwords_and_kafka_secrets(password_in):
    proc = wirestream("run", "--dry-run", "--source", str(SAMPLE),
                      "--sink", pg_url(password_in, "t"),
                      "--kafka-config", f"sasl.plain.password={SECRET}",
                      "--kafka-config", "sasl.jaas.config=org.apache.kafka.common.security.plain."
                      f'PlainLoginModule required username="u" password="{SECRET}";')
    assert proc.returncode == 0, proc.stderr
    assert_never_printed(proc)
    resolved = json.loads(proc.stdout)
    assert "***" in resolved["options"]["sink"]
    assert any("***" in pair for pair in resolved["options"]["kafka_config"])


def test_a_distributed_runner_gets_a_warning_for_each_inline_secret():
    proc = wirestream("run", "--dry-run", "--runner", "FlinkRunner", "--flink_master", "h:8081",
                      "--environment_type", "LOOPBACK", "--source", str(SAMPLE),
                      "--sink", pg_url("userinfo", "t"),
                      "--kafka-config", f"sasl.plain.password={SECRET}")
    assert proc.returncode == 0, proc.stderr
    assert_never_printed(proc)
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line and "inline" in line]
    assert len(warnings) == 2, proc.stderr
    assert any("--sink" in w and "PGPASSWORD" in w for w in warnings)
    assert any("--kafka-config sasl_plain_password" in w and "--kafka-config-file" in w
               for w in warnings)
    local = wirestream("run", "--dry-run", "--source", str(SAMPLE), "--sink", pg_url("userinfo", "t"))
    assert "inline" not in local.stderr  # the local runner publishes nothing


@pytest.mark.parametrize("password_in", ["userinfo", "query"])
def test_a_run_into_postgresql_prints_no_password(postgres, password_in):
    proc = wirestream("run", "--source", str(SAMPLE), "--sink", pg_url(password_in, postgres))
    assert proc.returncode == 0, proc.stderr
    assert "read=1 unique=1" in proc.stderr
    assert_never_printed(proc)


def test_a_failing_postgresql_sink_prints_no_password(postgres):
    proc = wirestream("run", "--source", str(SAMPLE),
                      "--sink", pg_url("query", postgres, database="no_such_db_" + uuid.uuid4().hex[:6]))
    assert proc.returncode == 1 and "pipeline failed" in proc.stderr
    assert "does not exist" in proc.stderr
    assert_never_printed(proc)


def test_usage_errors_print_no_secret():
    for args in (["--sink", f"postgresq://u:{SECRET}@h/db"],
                 ["--sink", f"postgresql://u:{SECRET}@h/db?table=bad-name"],
                 ["--sink", f"kafka://u:{SECRET}@h:1/t"],
                 ["--kafka-config", f"sasl_plain_pasword={SECRET}"],
                 ["--kafka-config", f"sasl.jaas.config=Nope required password=\"{SECRET}\";"]):
        proc = wirestream("run", "--source", str(SAMPLE), *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert_never_printed(proc)


def test_secrets_from_a_file_and_the_environment_are_masked_too(tmp_path):
    props = tmp_path / "client.properties"
    props.write_text("sasl.mechanism=PLAIN\nsasl.plain.username=u\n"
                     "sasl.plain.password=${env:WIRE_TEST_KAFKA_PASSWORD}\n"
                     "request.timeout.ms=notanumber\n")
    proc = wirestream("run", "--source", str(SAMPLE), "--kafka-config-file", str(props),
                      "--dry-run", env={"WIRE_TEST_KAFKA_PASSWORD": SECRET})
    assert proc.returncode == 2
    assert "request_timeout_ms" in proc.stderr
    props.write_text("sasl.mechanism=PLAIN\nsasl.plain.username=u\n"
                     "sasl.plain.password=${env:WIRE_TEST_KAFKA_PASSWORD}\n")
    proc = wirestream("run", "--source", str(SAMPLE), "--kafka-config-file", str(props),
                      "--sink", f"jsonl:{tmp_path / 'out'}",
                      env={"WIRE_TEST_KAFKA_PASSWORD": SECRET})
    assert proc.returncode == 0, proc.stderr
    assert_never_printed(proc)


@pytest.mark.integration
def test_kafka_run_and_produce_print_no_secret(kafka_broker, tmp_path):
    kafka = f"kafka://{kafka_broker.bootstrap}"
    # PLAINTEXT ignores SASL settings: the secret travels through every client, unused.
    secret_config = ["--kafka-config", f"sasl.plain.password={SECRET}",
                     "--kafka-config", "sasl.plain.username=u"]
    produced = wirestream("produce", "--to", f"{kafka}/wires", str(SAMPLE), *secret_config)
    assert produced.returncode == 0, produced.stderr
    assert_never_printed(produced)
    run = wirestream("run", "--source", f"{kafka}/wires?group=g&start=earliest&stop=end",
                     "--sink", f"{kafka}/events", *secret_config)
    assert run.returncode == 0, run.stderr
    assert "read=1 unique=1" in run.stderr
    assert_never_printed(run)
    failed = wirestream("produce", "--to", f"{kafka}/wires", str(SAMPLE),
                        "--kafka-config", f"sasl_plain_pasword={SECRET}")
    assert failed.returncode == 2
    assert_never_printed(failed)
    props = tmp_path / "client.properties"
    props.write_text("sasl.plain.username=u\nsasl.plain.password=${env:WIRE_TEST_KAFKA_PASSWORD}\n")
    from_file = wirestream("produce", "--to", f"{kafka}/wires", str(SAMPLE),
                           "--kafka-config-file", str(props),
                           env={"WIRE_TEST_KAFKA_PASSWORD": SECRET})
    assert from_file.returncode == 0, from_file.stderr
    assert_never_printed(from_file)
