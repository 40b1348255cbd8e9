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
  Grouped data (GroupByKey buffers), side inputs and timers keep Beam's own
  scheduling (they still wait until the source has finished), so the results
  of a run do not change; the streaming graph uses none of them. A stage run
  early reports its output complete only as far as its input is (Beam would
  say "complete" after any bundle, which would let a GroupByKey downstream
  fire before all its data came);
* the SDK's state cache is off. The FnApiRunner gives every bundle a new
  cache token, so the cache never hits from one bundle to the next, yet each
  value put into it is sized by walking its object graph: with the dedup
  stage's per-shard indexes that was most of the run's CPU time;
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
import inspect

from apache_beam.runners.portability.fn_api_runner import (execution, fn_runner, translations,
                                                          worker_handlers)
from apache_beam.runners.portability.fn_api_runner.watermark_manager import WatermarkManager
from apache_beam.runners.portability.fn_api_runner.fn_runner import FnApiRunner
from apache_beam.utils.timestamp import MAX_TIMESTAMP

# What ``--runner`` names for this class (Beam instantiates it by this path).
STREAMING_LOCAL_RUNNER = f"{__name__}.StreamingFnApiRunner"
_CHECKED_AGAINST = "apache-beam 2.77"


class LocalRunnerUnsupported(RuntimeError):
    """The installed Beam's FnApiRunner is not built the way this runner expects."""


def _check_runner_internals() -> None:
    expected = ["self", "runner_execution_context", "bundle_context_manager", "bundle_input"]
    found = list(inspect.signature(FnApiRunner._execute_bundle).parameters)
    queues = execution._ProcessingQueueManager()
    queue_methods = ("enque", "deque", "__len__")
    if (found != expected
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
        with _settings_for_a_long_run():  # the in-process worker is made during the run
            return super().run_stages(stage_context, stages)

    def _execute_bundle(self, runner_execution_context, bundle_context_manager, bundle_input):
        result = super()._execute_bundle(
            runner_execution_context, bundle_context_manager, bundle_input)
        _hold_output_to_input(runner_execution_context, bundle_context_manager)
        _schedule_downstream_first(runner_execution_context)
        return result


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


@contextlib.contextmanager
def _settings_for_a_long_run():
    cache_size, consolidate = worker_handlers.STATE_CACHE_SIZE_MB, fn_runner.consolidate_monitoring_infos
    worker_handlers.STATE_CACHE_SIZE_MB = 0
    fn_runner.consolidate_monitoring_infos = lambda infos: list(consolidate(infos))
    try:
        yield
    finally:
        worker_handlers.STATE_CACHE_SIZE_MB = cache_size
        fn_runner.consolidate_monitoring_infos = consolidate


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
