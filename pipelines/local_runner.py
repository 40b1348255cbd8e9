"""The local runner for unbounded sources: Beam's FnApiRunner, but stages
downstream of a live source run while it reads.

Why: the FnApiRunner runs stages in batch order. Each bundle's output buffers
wait for the consuming stage's input watermark to reach the end of time,
which it only does once every upstream stage has finished; meanwhile an
unbounded splittable DoFn (the Kafka reader) re-queues its own residual after
every poll, so the wait never ends. Only what is fused into the reading stage
runs live; the first stage boundary (in our streaming graph: every Flatten
with more than one input) holds all records until the run is stopped.

What this runner changes:

* after every bundle, the buffered output meant for a stage that can take
  data in any number of bundles (plain element buffers, no side inputs, no
  timers) is scheduled at once, ahead of the source's next poll. So a record
  flows through the whole graph before the source reads again: bounded
  buffering between stages and one poll's worth of latency per record.
  Grouped data (GroupByKey buffers) and side inputs keep Beam's own
  scheduling (they still wait until the source has finished), so the results
  of a run do not change; the streaming graph uses neither. A stage run
  early reports its output complete only as far as its input is (Beam would
  say "complete" after any bundle, which would let a GroupByKey downstream
  fire before all its data came);
* event-time timers (de-duplication's expiry) fire while the source is live,
  by the watermark the live sources report, once the graph has drained and
  after the timers of the stages upstream (``_HeldTimers``): Beam's runner
  would fire them by a watermark that does not follow a live source, ahead
  of data still queued between stages, or only once the source has ended;
* the SDK's state cache is off (``state_cache_off``, which the command's
  bounded runs use as well): with the dedup stage's per-shard indexes, sizing
  what went into it was most of the run's CPU time;
* per-stage metrics are merged after every bundle. The FnApiRunner merges
  them lazily, one generator wrapped around the last per bundle: fine for a
  batch run's few bundles, but a live run of some thousand bundles kept them
  all in memory and failed with RecursionError when read at the end.

It reaches into FnApiRunner internals (``_execute_bundle``, the execution
context's queues and watermarks, module globals of the runner and its
embedded worker), checked against Beam 2.77: if they differ, constructing the
runner raises ``LocalRunnerUnsupported`` rather than misbehaving. The module
globals are changed only while a run of this runner lasts.
Remote runners (Flink, Dataflow) are unaffected: they schedule stages
continuously already.
"""

from __future__ import annotations

import contextlib
import heapq
import inspect
import itertools
from typing import Any, Optional

from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.runners.portability.fn_api_runner import (execution, fn_runner, translations,
                                                          worker_handlers)
from apache_beam.runners.portability.fn_api_runner.translations import DataInput
from apache_beam.runners.portability.fn_api_runner.watermark_manager import WatermarkManager
from apache_beam.runners.portability.fn_api_runner.fn_runner import FnApiRunner
from apache_beam.runners.worker import statesampler
from apache_beam.utils.timestamp import MAX_TIMESTAMP, MIN_TIMESTAMP, Timestamp

# What ``--runner`` names for this class (Beam instantiates it by this path).
STREAMING_LOCAL_RUNNER = f"{__name__}.StreamingFnApiRunner"
_CHECKED_AGAINST = "apache-beam 2.77"


class LocalRunnerUnsupported(RuntimeError):
    """The installed Beam's FnApiRunner is not built the way this runner expects."""


def _check_runner_internals() -> None:
    expected = ["self", "runner_execution_context", "bundle_context_manager", "bundle_input"]
    found = list(inspect.signature(FnApiRunner._execute_bundle).parameters)
    timers = list(inspect.signature(FnApiRunner._enqueue_set_timers).parameters)
    scheduling = list(inspect.signature(FnApiRunner._schedule_ready_bundles).parameters)
    queues = execution._ProcessingQueueManager()
    queue_methods = ("enque", "deque", "__len__")
    if (found != expected
            or timers != ["self", "runner_execution_context", "bundle_context_manager", "fired_timers",
                          "previous_bundle_input"]
            or scheduling != ["self", "runner_execution_context"]
            or not all(hasattr(q, m) for q in (queues.ready_inputs, queues.watermark_pending_inputs)
                       for m in queue_methods)
            or not hasattr(execution, "ListBuffer")
            or not isinstance(getattr(worker_handlers, "STATE_CACHE_SIZE_MB", None), int)
            or not callable(getattr(fn_runner, "consolidate_monitoring_infos", None))
            or not hasattr(WatermarkManager.PCollectionNode("probe"), "_produced_watermark")):
        import apache_beam
        raise LocalRunnerUnsupported(
            f"the streaming local runner was written for {_CHECKED_AGAINST}'s FnApiRunner, "
            f"whose internals differ in apache-beam {apache_beam.__version__}: run with "
            "--runner FnApiRunner (stories then reach the sinks only when the run is stopped) "
            "or on Flink/Dataflow")


class StreamingFnApiRunner(FnApiRunner):
    """FnApiRunner that runs element-wise downstream stages of a live source
    after every bundle instead of after the source finishes."""

    def __init__(self, *args, **kwargs):
        _check_runner_internals()
        super().__init__(*args, **kwargs)

    def run_stages(self, stage_context, stages):
        self._timers = _HeldTimers()
        with _settings_for_a_long_run():  # the in-process worker is made during the run
            return super().run_stages(stage_context, stages)

    def _execute_bundle(self, runner_execution_context, bundle_context_manager, bundle_input):
        result = super()._execute_bundle(
            runner_execution_context, bundle_context_manager, bundle_input)
        self._timers.hold_output(runner_execution_context, bundle_context_manager)
        _hold_output_to_input(runner_execution_context, bundle_context_manager)
        self._timers.note_source_watermark(bundle_context_manager.stage.name, result)
        self._timers.take(runner_execution_context, bundle_context_manager.stage.name)
        _schedule_downstream_first(runner_execution_context)
        if self._timers.drained(runner_execution_context):
            self._timers.release_due(runner_execution_context)
        return result

    def _enqueue_set_timers(self, runner_execution_context, bundle_context_manager, fired_timers,
                            previous_bundle_input):
        """Event-time timers wait for their time (``_HeldTimers``), even when Beam's
        watermark says it has come: Beam's does not follow a live source."""
        event_time = {}
        for family in list(fired_timers):
            if bundle_context_manager.stage_timer_outputs[family][1] == beam_runner_api_pb2.TimeDomain.EVENT_TIME:
                event_time[family] = fired_timers.pop(family)
        super()._enqueue_set_timers(runner_execution_context, bundle_context_manager, fired_timers,
                                    previous_bundle_input)
        empty = {k: execution.ListBuffer(None) for k in previous_bundle_input.data.keys()}
        for family, (timer_data, target) in event_time.items():
            self._timers.hold(bundle_context_manager.stage.name, target,
                              DataInput(empty, {family: timer_data}))

    def _schedule_ready_bundles(self, runner_execution_context):
        """Called when nothing is ready (every source has finished): fire the due
        timers (upstream stages first) before what Beam would schedule."""
        if self._timers.release_due(runner_execution_context):
            return
        super()._schedule_ready_bundles(runner_execution_context)
        self._timers.take(runner_execution_context)
        if not self._timers.release_due(runner_execution_context):
            self._timers.give_back(runner_execution_context)  # never due: Beam's own check reports them


def _hold_output_to_input(context, bundle_context_manager) -> None:
    """Output is complete no further than the stage's input: the base class
    marks it complete after any bundle, right only when stages run in order."""
    watermarks = context.watermark_manager
    input_watermark = watermarks.get_stage_node(bundle_context_manager.stage.name).input_watermark()
    if input_watermark >= MAX_TIMESTAMP:
        return
    for buffer_id in bundle_context_manager.stage_data_outputs.values():
        output = watermarks.get_pcoll_node(translations.split_buffer_id(buffer_id)[1])
        if output._produced_watermark > input_watermark:
            output.set_produced_watermark(input_watermark)


# Beam's state sampler thread sleeps up to 200 ms between samples, and every
# bundle's end waits for it to wake: a bounded run paid that once per stage after
# the stories were read, a quarter of a second of a backfill's tail. Its samples
# (time per step, for the metrics) stay; they are only taken more often.
SAMPLER_PERIOD_MS = 5


@contextlib.contextmanager
def short_sampler_waits():
    """While it lasts, bundles run in this process end at most SAMPLER_PERIOD_MS
    after their work. Left as it is if the installed Beam's sampler differs."""
    init = statesampler.StateSampler.__init__
    if init.__defaults__ != (statesampler.DEFAULT_SAMPLING_PERIOD_MS,):
        yield
        return
    init.__defaults__ = (SAMPLER_PERIOD_MS,)
    try:
        yield
    finally:
        init.__defaults__ = (statesampler.DEFAULT_SAMPLING_PERIOD_MS,)


@contextlib.contextmanager
def state_cache_off():
    """While it lasts, the workers the FnApiRunner makes in this process keep no
    state cache. It gives every bundle a new cache token, so the cache never hits
    from one bundle to the next, yet every value put in it is sized by walking its
    object graph: streaming dedup's state, and a backfill's side inputs (the
    cluster decisions of an archive read twice: a third of a second)."""
    cache_size = worker_handlers.STATE_CACHE_SIZE_MB
    worker_handlers.STATE_CACHE_SIZE_MB = 0
    try:
        yield
    finally:
        worker_handlers.STATE_CACHE_SIZE_MB = cache_size


@contextlib.contextmanager
def _settings_for_a_long_run():
    consolidate = fn_runner.consolidate_monitoring_infos
    fn_runner.consolidate_monitoring_infos = lambda infos: list(consolidate(infos))
    try:
        with state_cache_off():
            yield
    finally:
        fn_runner.consolidate_monitoring_infos = consolidate


class _HeldTimers:
    """Event-time timer firings, held by the runner until they are due and no
    data is in flight between stages, then released upstream stages first.

    Why: Beam's FnApiRunner runs a timer as soon as its stage's input watermark
    has passed it, and marks a stage's output complete after any bundle; both
    are right only when stages run in order, each once. Run live, a stage's
    input watermark can pass a timer while data for it is still queued between
    stages, and the timer would fire (expire state) ahead of that data. Held
    here, a timer fires only once every record read so far has gone through
    the graph, and the output of one stage's timers (data) goes through before
    the timers of the stages after it fire."""

    def __init__(self):
        # stage -> heap of (due at watermark, arrival number, data input): a live run holds
        # one entry per bundle that set timers, so only each stage's earliest is looked at.
        self._held: dict[str, list[tuple[Any, int, Any]]] = {}
        self._count = itertools.count()
        self._sources: set[str] = set()  # stages that re-queue themselves (a live source's residual)
        # The watermark each live source reports with its residual (its watermark
        # estimator's). Beam's watermark manager does not follow it: a stage behind
        # a source started by Create/Impulse sees its input complete at once.
        self._source_watermarks: dict[str, Timestamp] = {}

    def note_source_watermark(self, stage_name: str, result) -> None:
        residuals = result.process_bundle.residual_roots
        if residuals:
            reported = [Timestamp.from_proto(w) for r in residuals
                        for w in r.application.output_watermarks.values()]
            self._source_watermarks[stage_name] = min(reported, default=MIN_TIMESTAMP)
        else:
            self._source_watermarks.pop(stage_name, None)  # finished (or not a live source)

    def _watermark(self, context, stage_name: str) -> Timestamp:
        """A stage's input watermark. While a source is live: the sources' watermarks,
        held back by the timers of the stages upstream (their firing may still emit);
        timers fire only once all data read so far has gone through (``drained``).
        After: Beam's own (every stage's input is complete then)."""
        if not self._source_watermarks:
            return context.watermark_manager.get_stage_node(stage_name).input_watermark()
        order = {name: index for index, name in enumerate(context.stages)}  # topological
        holds = [heap[0][0] for name, heap in self._held.items() if heap and order[name] < order[stage_name]]
        return min([*self._source_watermarks.values(), *holds])

    def hold_output(self, context, bundle_context_manager) -> None:
        """A stage's output is complete no further than its earliest held timer (whose
        firing may still emit): Beam's runner leaves it where it was (the start of
        time) after any bundle that set a timer, which would hold back every timer
        downstream until the run ends."""
        if not bundle_context_manager.stage_timer_outputs:
            return
        heap = self._held.get(bundle_context_manager.stage.name)
        hold = heap[0][0] if heap else MAX_TIMESTAMP
        watermarks = context.watermark_manager
        complete = min(hold, watermarks.get_stage_node(bundle_context_manager.stage.name).input_watermark())
        for buffer_id in bundle_context_manager.stage_data_outputs.values():
            watermarks.get_pcoll_node(translations.split_buffer_id(buffer_id)[1]).set_produced_watermark(complete)

    def hold(self, stage_name: str, due, data_input) -> None:
        heapq.heappush(self._held.setdefault(stage_name, []), (due, next(self._count), data_input))

    def take(self, context, stage_name: Optional[str] = None) -> None:
        """Notes a live source (a stage that re-queued itself) and moves the timer
        firings Beam queued by its own rule (``_schedule_ready_bundles``) to the held ones."""
        queues = context.queues
        if stage_name is not None:
            ready = [queues.ready_inputs.deque() for _ in range(len(queues.ready_inputs))]
            for name, data_input in ready:
                if name == stage_name and not data_input.timers:
                    self._sources.add(name)
                queues.ready_inputs.enque((name, data_input))
        kept = []
        while len(queues.watermark_pending_inputs):
            (name, watermark), data_input = queues.watermark_pending_inputs.deque()
            if data_input.timers:
                self.hold(name, watermark, data_input)
            else:
                kept.append(((name, watermark), data_input))
        for item in kept:
            queues.watermark_pending_inputs.enque(item)

    def drained(self, context) -> bool:
        """Nothing ready but a live source's next read."""
        queues = context.queues
        ready = [queues.ready_inputs.deque() for _ in range(len(queues.ready_inputs))]
        for item in ready:
            queues.ready_inputs.enque(item)
        return all(name in self._sources for name, _ in ready)

    def release_due(self, context) -> bool:
        """Puts the due timers at the front of the ready queue, upstream stages
        first; False if none is due."""
        due = [name for name, heap in self._held.items() if heap and self._watermark(context, name) >= heap[0][0]]
        if not due:
            return False
        # Upstream first: what a timer emits is run before the next stage's timers
        # (``_schedule_downstream_first`` puts it ahead of them).
        order = {name: index for index, name in enumerate(context.stages)}  # topological
        fire = []
        for name in sorted(due, key=order.__getitem__):
            heap, watermark = self._held[name], self._watermark(context, name)
            while heap and heap[0][0] <= watermark:
                fire.append((name, heapq.heappop(heap)[2]))
        queues = context.queues
        ready = [queues.ready_inputs.deque() for _ in range(len(queues.ready_inputs))]
        for item in fire + ready:
            queues.ready_inputs.enque(item)
        return True

    def give_back(self, context) -> None:
        for name, heap in self._held.items():
            for due, _, data_input in heap:
                context.queues.watermark_pending_inputs.enque(((name, due), data_input))
        self._held = {}


def _runs_in_any_bundles(stage, data_input) -> bool:
    """Input a stage may take now: plain element buffers, nothing that needs
    all of its data at once (a group, a side input) or a watermark (timers)."""
    return (not data_input.timers
            and all(isinstance(b, execution.ListBuffer) for b in data_input.data.values())
            and not any(True for _ in stage.side_inputs()))


def _schedule_downstream_first(context) -> None:
    """Moves runnable buffered output from the watermark queue to the front of
    the ready queue, upstream stages first; what was ready (the source's
    next poll) runs after it."""
    queues = context.queues
    runnable, held = [], []
    while len(queues.watermark_pending_inputs):
        (stage_name, watermark), data_input = queues.watermark_pending_inputs.deque()
        # Data buffers wait for MAX_TIMESTAMP; anything else is a timer's own time.
        if watermark == MAX_TIMESTAMP and _runs_in_any_bundles(context.stages[stage_name], data_input):
            runnable.append((stage_name, data_input))
        else:
            held.append(((stage_name, watermark), data_input))
    for item in held:
        queues.watermark_pending_inputs.enque(item)
    if not runnable:
        return
    ready = []
    while len(queues.ready_inputs):
        ready.append(queues.ready_inputs.deque())
    order = {name: index for index, name in enumerate(context.stages)}  # topological
    runnable.sort(key=lambda item: order[item[0]])
    for item in runnable + ready:  # the queue is first in, first out
        queues.ready_inputs.enque(item)
