import os
from pathlib import Path

import pytest

from benchmarks.datasets import data_dir

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
