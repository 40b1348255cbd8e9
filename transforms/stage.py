"""The one DoFn that wraps every stage function.

A stage function takes one of our records and returns the next one (or an
iterable of them). Any exception becomes a DeadLetter on a tagged output, so
one bad story never stops the run and nothing is lost. A DataError (bad
input) is an ordinary dead letter; any other exception is a code error, our
bug: its dead letter carries the traceback, it is logged (at ERROR, with the
traceback, once per worker and stage) and counted apart (metric ``errors``),
and the command line fails a run that had any unless they are tolerated.
"""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any, Callable, Iterable, Optional

import apache_beam as beam
from apache_beam import pvalue

from wirestream.schemas import DataError, DeadLetter, EventRecord, RawRecord, Story

DEAD_LETTERS = "dead_letters"
METRICS_NAMESPACE = "wirestream"
CODE_ERRORS = "errors"  # the counter of code errors, over all stages

log = logging.getLogger(__name__)


def counter_totals(result) -> dict[str, int]:
    """Our counters of a finished run, by name, summed over the steps that
    update them (``unique`` is counted in two: first writes and corrections)."""
    from apache_beam.metrics.metric import MetricsFilter
    totals: dict[str, int] = {}
    for counter in result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + (value or 0)
    return totals


def raw_payload(element: Any) -> bytes:
    """The best raw form of an element for its dead letter: the original bytes
    where the element still carries them, else the record as JSON."""
    if isinstance(element, RawRecord):
        return element.payload
    if isinstance(element, Story) and element.raw:
        return element.raw
    if isinstance(element, EventRecord):
        return json.dumps(element.to_dict(), ensure_ascii=False, sort_keys=True).encode("utf-8")
    return repr(element).encode("utf-8")


def _carried(element: Any) -> Any:
    """The story a stage's intermediate form of one carries (normalise's ``ReadableStory``),
    else the element: what its dead letter is of."""
    story = getattr(element, "story", None)
    return story if isinstance(story, Story) else element


def stage_dead_letter(stage: str, element: Any, exc: Exception) -> DeadLetter:
    """The dead letter of an exception raised by a stage function: a DataError
    is the input's fault, anything else is a code error with its traceback."""
    error = f"{type(exc).__name__}: {exc}"
    element = _carried(element)
    if isinstance(exc, DataError):
        return DeadLetter(stage=stage, error=error, raw=raw_payload(element), origin=element.origin)
    return DeadLetter(stage=stage, error=error, raw=raw_payload(element), origin=element.origin,
                      error_kind="code", traceback="".join(traceback.format_exception(exc)))


def run_stage(stage: str, fn: Callable[[Any], Any], element: Any,
              many: bool = False) -> tuple[list, list[DeadLetter], Optional[Exception]]:
    """One stage function on one element -> (records passed on, dead letters,
    the code error raised, if any, for the log). Never raises."""
    try:
        result = fn(element)
        outputs: Iterable = list(result) if many else (result,)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a dead letter
        dead = stage_dead_letter(stage, element, exc)
        return [], [dead], exc if dead.error_kind == "code" else None
    passed, dead_letters = [], []
    for out in outputs:
        (dead_letters if isinstance(out, DeadLetter) else passed).append(out)
    return passed, dead_letters, None


class OutcomeCounters:
    """The run's ``unique`` and ``duplicates`` counters (the summary reads them), shared
    by every step that decides or re-decides records' clusters."""

    def __init__(self):
        self.unique = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "unique")
        self.duplicates = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "duplicates")

    def count(self, records: int, duplicates: int) -> None:
        """``records`` decided for the first time, ``duplicates`` of them duplicates."""
        if duplicates:
            self.duplicates.inc(duplicates)
        if records > duplicates:
            self.unique.inc(records - duplicates)

    def move(self, to_duplicate: bool) -> None:
        """A record decided again moves between the two."""
        self.duplicates.inc(1 if to_duplicate else -1)
        self.unique.inc(-1 if to_duplicate else 1)


class StageCounters:
    """The counters of one stage (``<stage>_out``, ``<stage>_dead_letters``,
    ``errors``) and its code-error log, shared by every DoFn that runs it."""

    def __init__(self, stage: str):
        self.stage = stage
        self.failed = beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"{stage}_dead_letters")
        self.passed = beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"{stage}_out")
        self.code_errors = beam.metrics.Metrics.counter(METRICS_NAMESPACE, CODE_ERRORS)
        self._logged = False

    def count(self, passed: int, dead_letters: list[DeadLetter]) -> None:
        if passed:
            self.passed.inc(passed)
        if dead_letters:
            self.failed.inc(len(dead_letters))
        for dead in dead_letters:
            if dead.error_kind == "code":
                self.code_errors.inc()

    def log_code_error(self, dead: DeadLetter, exc: Optional[BaseException] = None) -> None:
        # Once per instance at ERROR (shown by default); the rest at DEBUG, so a
        # bug that fails every story does not flood the log. Each dead letter
        # has its traceback anyway.
        log.log(logging.DEBUG if self._logged else logging.ERROR,
                "code error in stage %s (a wirestream bug, not bad input) at %s: %s%s",
                self.stage, _where(dead.origin), dead.error,
                "" if exc is not None else "\n" + (dead.traceback or ""), exc_info=exc)
        self._logged = True


class StageDoFn(beam.DoFn):
    def __init__(self, stage: str, fn: Callable[[Any], Any], many: bool = False):
        self._fn = fn
        self._many = many
        self._counters = StageCounters(stage)

    def process(self, element):
        passed, dead_letters, exc = run_stage(self._counters.stage, self._fn, element, self._many)
        self._counters.count(len(passed), dead_letters)
        for dead in dead_letters:
            if dead.error_kind == "code":
                self._counters.log_code_error(dead, exc)
            yield pvalue.TaggedOutput(DEAD_LETTERS, dead)
        yield from passed


def _where(origin) -> str:
    if origin.kind == "kafka":
        return f"{origin.topic}[{origin.partition}]@{origin.offset}"
    return f"{origin.path}" + (f":{origin.line}" if origin.line is not None else "")


class ApplyStage(beam.PTransform):
    """``records | ApplyStage("normalise", fn)`` -> (records, dead_letters)."""

    def __init__(self, stage: str, fn: Callable[[Any], Any], many: bool = False,
                 output_type: Any = Any):
        super().__init__(label=stage)
        self._dofn = StageDoFn(stage, fn, many)
        # The records' type picks their coder where Beam materialises them.
        self._output_type = output_type

    def expand(self, pcoll):
        results = pcoll | beam.ParDo(self._dofn).with_output_types(self._output_type).with_outputs(
            DEAD_LETTERS, main="records")
        return results.records, results[DEAD_LETTERS]
