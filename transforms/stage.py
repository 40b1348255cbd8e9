"""The one DoFn that wraps every stage function.

A stage function takes one of our records and returns the next one (or an
iterable of them). Any exception becomes a DeadLetter on a tagged output, so
one bad story never stops the run and nothing is lost.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable

import apache_beam as beam
from apache_beam import pvalue

from schemas import DeadLetter, EventRecord, RawRecord, Story

DEAD_LETTERS = "dead_letters"
METRICS_NAMESPACE = "wirestream"


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


class StageDoFn(beam.DoFn):
    def __init__(self, stage: str, fn: Callable[[Any], Any], many: bool = False):
        self._stage = stage
        self._fn = fn
        self._many = many
        self._failed = beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"{stage}_dead_letters")
        self._passed = beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"{stage}_out")

    def process(self, element):
        try:
            result = self._fn(element)
            outputs: Iterable = list(result) if self._many else (result,)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a dead letter
            self._failed.inc()
            yield pvalue.TaggedOutput(DEAD_LETTERS, DeadLetter(
                stage=self._stage, error=f"{type(exc).__name__}: {exc}",
                raw=raw_payload(element), origin=element.origin))
            return
        for out in outputs:
            if isinstance(out, DeadLetter):
                self._failed.inc()
                yield pvalue.TaggedOutput(DEAD_LETTERS, out)
            else:
                self._passed.inc()
                yield out


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
