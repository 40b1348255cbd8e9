"""The local runners' adjustments to Beam's in-process worker (pipelines/local_runner.py)."""

from apache_beam.runners.worker import statesampler
from apache_beam.utils.counters import CounterFactory

from wirestream.pipelines.local_runner import SAMPLER_PERIOD_MS, short_sampler_waits


def _period() -> int:
    return statesampler.StateSampler("probe", CounterFactory()).sampling_period_ms


def test_bundles_started_while_it_lasts_sample_more_often_and_beams_default_comes_back():
    default = _period()
    assert default == statesampler.DEFAULT_SAMPLING_PERIOD_MS > SAMPLER_PERIOD_MS
    with short_sampler_waits():
        assert _period() == SAMPLER_PERIOD_MS
    assert _period() == default


def test_beams_default_comes_back_when_the_run_fails():
    try:
        with short_sampler_waits():
            raise RuntimeError("the pipeline failed")
    except RuntimeError:
        pass
    assert _period() == statesampler.DEFAULT_SAMPLING_PERIOD_MS
