"""The streaming local runner: what a live unbounded source emits reaches the
stages behind a multi-input Flatten (and keyed state) while the source is
still reading, and results are those of Beam's own FnApiRunner."""

import apache_beam as beam
import pytest
from apache_beam.coders import PickleCoder
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner, fn_runner, worker_handlers
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import userstate
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from wirestream.pipelines import local_runner
from wirestream.pipelines.local_runner import LocalRunnerUnsupported, StreamingFnApiRunner

TICKS = 12
# The runners execute DoFns in this process, so module state is shared with them.
SINK_SEEN: list = []
SEEN_WHEN_EMITTED: dict = {}  # tick -> how many records the sink had seen when it was emitted
CACHE_SIZES: list = []


def to_sink(value):  # by name, so the runner's copy of the DoFn appends to this module's list
    SINK_SEEN.append(value)


def note_cache_size(_):
    CACHE_SIZES.append(worker_handlers.STATE_CACHE_SIZE_MB)


def count_tick(keyed):
    beam.metrics.Metrics.counter("test", "ticks").inc()
    return keyed


class LiveTicks(beam.DoFn, RestrictionProvider):
    """An unbounded source: one tick per call, then a checkpoint, as the Kafka reader does."""

    def __init__(self, ticks: int = TICKS):
        self._ticks = ticks

    def initial_restriction(self, _):
        return OffsetRange(0, self._ticks)

    def create_tracker(self, restriction):
        return OffsetRestrictionTracker(restriction)

    def restriction_size(self, _, restriction):
        return restriction.size()

    @beam.DoFn.unbounded_per_element()
    def process(self, _, tracker=beam.DoFn.RestrictionParam()):
        tick = tracker.current_restriction().start
        if tracker.try_claim(tick):
            SEEN_WHEN_EMITTED[tick] = len(SINK_SEEN)
            yield (f"desk-{tick % 3}", tick)
            tracker.defer_remainder()


class CountPerDesk(beam.DoFn):
    COUNT = userstate.ReadModifyWriteStateSpec("count", PickleCoder())

    def process(self, keyed, count=beam.DoFn.StateParam(COUNT)):
        count.write((count.read() or 0) + 1)
        yield keyed[1]


def run_live_graph(runner):
    SINK_SEEN.clear()
    SEEN_WHEN_EMITTED.clear()
    with beam.Pipeline(runner=runner, options=PipelineOptions(["--streaming"])) as pipeline:
        ticks = pipeline | "Start" >> beam.Create(["wire"]) | "Read" >> beam.ParDo(LiveTicks())
        backfill = pipeline | "Backfill" >> beam.Create([("desk-0", -1)])
        ((ticks, backfill)
         | "Merge" >> beam.Flatten()
         | "Count" >> beam.ParDo(CountPerDesk())
         | "Sink" >> beam.Map(to_sink))
    return sorted(SINK_SEEN), dict(SEEN_WHEN_EMITTED)


def test_each_record_passes_the_flatten_before_the_source_reads_again():
    delivered, seen_when_emitted = run_live_graph(StreamingFnApiRunner())
    assert delivered == [-1, *range(TICKS)]  # every record once, state and all
    # Tick i is emitted only once the sink has every earlier tick.
    assert all(seen_when_emitted[tick] >= tick for tick in range(TICKS)), seen_when_emitted


def test_beams_fnapirunner_holds_everything_behind_the_flatten_until_the_source_ends():
    # Why the streaming runner exists: if this starts failing, Beam fixed it.
    delivered, seen_when_emitted = run_live_graph(FnApiRunner())
    assert delivered == [-1, *range(TICKS)]
    assert set(seen_when_emitted.values()) == {0}


def test_grouped_data_and_side_inputs_give_the_same_results():
    def headlines_by_desk(pipeline):
        stories = pipeline | beam.Create([("markets", "Gold rises"), ("sport", "Cup final"),
                                          ("markets", "Oil falls")])
        desks = pipeline | "Desks" >> beam.Create(["markets"])
        return (stories
                | beam.GroupByKey()
                | beam.Map(lambda kv, wanted: (kv[0], sorted(kv[1]), kv[0] in wanted),
                           wanted=beam.pvalue.AsList(desks)))

    with beam.Pipeline(runner=StreamingFnApiRunner()) as pipeline:
        assert_that(headlines_by_desk(pipeline), equal_to([
            ("markets", ["Gold rises", "Oil falls"], True), ("sport", ["Cup final"], False)]))


def test_the_state_cache_is_off_during_the_run_only():
    before, consolidate = worker_handlers.STATE_CACHE_SIZE_MB, fn_runner.consolidate_monitoring_infos
    CACHE_SIZES.clear()
    with beam.Pipeline(runner=StreamingFnApiRunner()) as pipeline:
        _ = pipeline | beam.Create([1]) | beam.Map(note_cache_size)
    assert CACHE_SIZES == [0]
    assert worker_handlers.STATE_CACHE_SIZE_MB == before
    assert fn_runner.consolidate_monitoring_infos is consolidate


def test_a_run_of_many_bundles_still_reports_its_metrics():
    # Beam's FnApiRunner fails here (RecursionError) from about a thousand bundles a stage.
    ticks = 1500  # one bundle each
    pipeline = beam.Pipeline(runner=StreamingFnApiRunner())
    _ = (pipeline | beam.Create(["wire"]) | beam.ParDo(LiveTicks(ticks))
         | beam.Map(count_tick))
    result = pipeline.run()
    counters = result.metrics().query(MetricsFilter().with_name("ticks"))["counters"]
    assert [c.committed for c in counters] == [ticks]


def test_changed_runner_internals_are_refused(monkeypatch):
    def _execute_bundle(self, context, bundle_manager, inputs, extra):
        raise AssertionError("never called")

    monkeypatch.setattr(FnApiRunner, "_execute_bundle", _execute_bundle)
    with pytest.raises(LocalRunnerUnsupported, match="apache-beam 2.77"):
        StreamingFnApiRunner()


def test_the_runner_name_is_one_beam_can_load():
    from apache_beam.runners.runner import create_runner
    assert isinstance(create_runner(local_runner.STREAMING_LOCAL_RUNNER), StreamingFnApiRunner)


class TimedTicks(LiveTicks):
    """A live source whose tick i has event time 10 i seconds, its watermark following."""

    @beam.DoFn.unbounded_per_element()
    def process(self, _, tracker=beam.DoFn.RestrictionParam(),
                watermark=beam.DoFn.WatermarkEstimatorParam(ManualWatermarkEstimator.default_provider())):
        tick = tracker.current_restriction().start
        if tracker.try_claim(tick):
            yield TimestampedValue((f"desk-{tick}", tick), Timestamp(seconds=10 * tick))
            watermark.set_watermark(Timestamp(seconds=10 * tick))
            tracker.defer_remainder()


class ExpireAfter15s(beam.DoFn):
    SEEN = userstate.ReadModifyWriteStateSpec("seen", PickleCoder())
    EXPIRY = userstate.TimerSpec("expiry", userstate.TimeDomain.WATERMARK)

    def process(self, keyed, timestamp=beam.DoFn.TimestampParam, seen=beam.DoFn.StateParam(SEEN),
                expiry=beam.DoFn.TimerParam(EXPIRY)):
        seen.write(keyed[1])
        expiry.set(timestamp + 15)
        yield "tick", keyed[1]

    @userstate.on_timer(EXPIRY)
    def expire(self, seen=beam.DoFn.StateParam(SEEN)):
        yield "expired", seen.read()
        seen.clear()


def test_event_time_timers_fire_while_the_source_is_live_once_its_watermark_passes_them():
    SINK_SEEN.clear()
    with beam.Pipeline(runner=StreamingFnApiRunner(), options=PipelineOptions(["--streaming"])) as pipeline:
        (pipeline | beam.Create(["wire"]) | beam.ParDo(TimedTicks())
         | beam.ParDo(ExpireAfter15s()).with_input_types(tuple[str, int])
         | beam.Map(to_sink))
    order = {item: i for i, item in enumerate(SINK_SEEN)}
    assert sorted(SINK_SEEN) == sorted([("tick", t) for t in range(TICKS)] + [("expired", t) for t in range(TICKS)])
    for tick in range(TICKS - 3):
        # Tick t's timer (10 t + 15 s) is due once tick t + 2 (10 t + 20 s) has been read: not before,
        # and before the source reads on.
        assert order[("tick", tick + 1)] < order[("expired", tick)] < order[("tick", tick + 3)], SINK_SEEN
