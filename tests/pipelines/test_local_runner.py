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


def _side_input_sizings(monkeypatch) -> list:
    """Runs a step with a side input in this process; returns what the state cache sized."""
    import apache_beam as beam
    from apache_beam.runners.worker import statecache
    sized = []
    deep_size = statecache.get_deep_size
    monkeypatch.setattr(statecache, "get_deep_size", lambda *values: sized.append(values) or deep_size(*values))
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        decisions = pipeline | "Decisions" >> beam.Create([("a", 1), ("b", 2)])
        (pipeline | "Stories" >> beam.Create(["a", "b"])
         | beam.Map(lambda uid, by_uid: by_uid[uid], beam.pvalue.AsDict(decisions)))
    return sized


def test_runs_made_while_the_state_cache_is_off_never_size_what_they_read(monkeypatch):
    from wirestream.pipelines.local_runner import state_cache_off
    assert _side_input_sizings(monkeypatch)  # Beam's default: the side input is sized
    with state_cache_off():
        assert _side_input_sizings(monkeypatch) == []
    assert _side_input_sizings(monkeypatch)
