import os
from pathlib import Path

import pytest

from benchmarks.datasets import data_dir
from wirestream.pipelines import engines

# The kafka_broker fixture: a real Apache Kafka broker on a free port.
pytest_plugins = ["tests.kafka_broker"]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = data_dir()
    if not d.is_dir():
        message = f"real data not found at {d} (set WIRESTREAM_DATA)"
        if os.environ.get("CI"):  # CI always has the data: its absence is a failure there
            pytest.fail(message)
        pytest.skip(message)
    return d


@pytest.fixture
def flink_job_server() -> Path:
    """The assembled Flink job server jar (Beam's FlinkRunner finds it by itself);
    skipped with the engines' reason where it is missing."""
    from tests.kafka_broker import require_engine  # here: the module is also a plugin (above)
    if engines.java_binary() is None:
        require_engine("Flink needs Java, which is not installed")
    jar = engines.flink_job_server_jar()
    if jar is None:
        reason = engines.unavailable_reason(engines.FLINK_JOB_SERVER)
        if reason:  # make engines tried: the registry does not serve it
            pytest.skip(reason)
        require_engine(engines.missing_reason(engines.FLINK_JOB_SERVER))
    return jar
