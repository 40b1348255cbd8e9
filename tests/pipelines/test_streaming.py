"""How long a streaming job may drain after Ctrl-C (pipelines/streaming.py)."""

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from wirestream.pipelines.streaming import DRAIN_SECONDS, drain_deadline


def test_a_job_whose_readers_run_here_drains_as_long_as_it_takes():
    # Prism and Flink embedded: LOOPBACK workers run the Kafka readers in the command's process.
    assert drain_deadline(PipelineOptions(["--environment_type", "LOOPBACK"])) is None


@pytest.mark.parametrize("argv", [[], ["--environment_type", "DOCKER"], ["--environment_type=EXTERNAL",
                                                                           "--environment_config=localhost:50000"]])
def test_a_job_whose_readers_run_elsewhere_is_cancelled_after_the_drain_time(argv):
    assert drain_deadline(PipelineOptions(argv)) == DRAIN_SECONDS == 30.0
