"""The bounded graph's per-story work as one fused step, optionally in forked workers.

A bounded run parses, normalises, tags and sketches each story in one DoFn
(``StoryChain``) rather than four: each boundary costs Beam's per-element
bookkeeping, and the stories' own work is the same plain stage functions, with
the same dead letters (stage names, raw payloads) and the same counters.

On the local runner a bounded run also spreads that work over worker processes
(``--local-workers``, default: the cores this process may use). As soon as its
options are read, the command forks one process with Beam and the stages
already imported (Beam's multi_processing mode spawns fresh interpreters that
import everything again), which loads gazetteers, rules, language profiles and
compiled kernels while the command builds and starts the pipeline, then forks
the workers, which share all of it (``local_workers.WarmWorkers``). Clustering
needs every story and stays in the one pipeline: workers only map stories to
records. The stage functions are deterministic, so the output is the same
whichever process ran a story.
"""

from __future__ import annotations

import functools
import gc
import multiprocessing
import os
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Optional

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from wirestream.pipelines.local_workers import WarmWorkers
from wirestream.schemas import DeadLetter, RawRecord
from wirestream.schemas.coders import EventRecordCoder
from wirestream.transforms.compiled import without_blas
from wirestream.transforms.dedup import DedupSettings
from wirestream.transforms.dedup import sketched as sketched_record
from wirestream.transforms.dedup.batch import rendered_undecided, sketched_batch
from wirestream.transforms.normalise import NORMALISE_PHASES, NormaliseSettings, unnormalised_record
from wirestream.transforms.parse import ParseSettings, parse_record
from wirestream.transforms.stage import DEAD_LETTERS, StageCounters, run_stage
from wirestream.transforms.tag import tag_record

# Stories per task handed to a worker: large enough that pickling a task and
# its results is a small share of the work, small enough to keep both busy.
BATCH_STORIES = 128


@dataclass(frozen=True)
class ChainSettings:
    parse: ParseSettings = ParseSettings()
    normalise: NormaliseSettings = NormaliseSettings()
    tag_data_dir: Optional[str] = None
    dedup: DedupSettings = DedupSettings()
    parse_only: bool = False
    # With dedup: the file sink's rendering (``RenderedShards``), when it takes its records
    # rendered: the records then leave the chain as lines, not encoded records.
    rendering: Any = None

    @property
    def stages(self) -> tuple[str, ...]:
        return ("parse", "normalise") if self.parse_only else ("parse", "normalise", "tag", "dedup")


@dataclass
class ChainResult:
    """What a batch of raw records became: the finished outputs (event records,
    or (record, sketch) pairs for dedup), the dead letters, and per stage how
    many records passed and which dead letters it made (for the counters).
    Encoded (``encoded``, as records leave a worker process), the outputs are
    the records encoded by their coder, or for dedup one ``SketchedBatch``."""

    outputs: list = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    passed: dict[str, int] = field(default_factory=dict)
    failed: dict[str, list[DeadLetter]] = field(default_factory=dict)
    encoded: bool = False


def _stage_functions(settings: ChainSettings):
    """Each stage with its steps, (function, whether it gives many): normalise's are its
    phases (``NORMALISE_PHASES``)."""
    parse = functools.partial(parse_record, settings=settings.parse)
    if settings.parse_only:
        return (("parse", ((parse, True),)), ("normalise", ((unnormalised_record, False),)))
    return (("parse", ((parse, True),)),
            ("normalise", tuple((functools.partial(phase, settings=settings.normalise), False)
                                for phase in NORMALISE_PHASES)),
            ("tag", ((functools.partial(tag_record, data_dir=settings.tag_data_dir), False),)),
            ("dedup", ((functools.partial(sketched_record, settings=settings.dedup), False),)))


def run_chain(raws: list[RawRecord], settings: ChainSettings) -> ChainResult:
    """Every stage function on each raw record, with the dead letters and counts
    the separate stage DoFns would give. One step at a time over the whole batch:
    story by story through every step, the steps evict each other's tables from
    the processor's caches (10% more CPU per story for the stages, 5% more again
    for normalise's phases)."""
    result = ChainResult(passed={s: 0 for s in settings.stages},
                         failed={s: [] for s in settings.stages})
    elements = raws
    for stage, steps in _stage_functions(settings):
        for fn, many in steps:
            after = []
            for element in elements:
                passed, dead_letters, _ = run_stage(stage, fn, element, many)
                after += passed
                if dead_letters:
                    result.failed[stage] += dead_letters
                    result.dead_letters += dead_letters
            elements = after
        result.passed[stage] += len(elements)
    result.outputs = elements
    return result


_RECORD_CODER = EventRecordCoder()


def _encoded(records: list) -> list[bytes]:
    return list(map(_RECORD_CODER.encode, records))


def run_chain_encoded(raws: list[RawRecord], settings: ChainSettings) -> ChainResult:
    """``run_chain`` with each record encoded by its Beam coder, as a worker returns
    it: a pickled dataclass costs the command's process several times more to load
    (field names, one object per value, the collector's passes) than the coder's
    bytes. With dedup, the batch's records, sketches and bucket keys are one
    ``SketchedBatch``, which the bounded run carries on as one element to the step
    that applies the clusters (``BatchClusters``), where its records are decoded once;
    with ``settings.rendering``, the records are rendered as the sink's lines instead,
    which that step amends where a cluster differs and the sink writes as they are."""
    result = run_chain(raws, settings)
    if settings.parse_only:
        result.outputs = _encoded(result.outputs)
    elif result.outputs:
        carry = _encoded if settings.rendering is None else rendered_undecided(settings.rendering)
        result.outputs = [sketched_batch(result.outputs, settings.dedup, carry)]
    result.encoded = True
    return result


# The forked workers of this process, if any (``start_local_workers``).
_WORKERS: Optional[WarmWorkers] = None
# The collector's thresholds while they run, and before.
_COLLECTOR_THRESHOLDS = (20_000, 20, 20)
_THRESHOLDS: Optional[tuple[int, int, int]] = None


def default_local_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def warm_up(settings: ChainSettings) -> None:
    """Loads what every story needs and the stages load lazily (gazetteers,
    rules, language profiles and codes, the compiled kernels) before the first
    story. dateparser, which few stories reach, stays lazy."""
    from wirestream.transforms.dedup import sketch
    from wirestream.transforms.normalise import language
    from wirestream.transforms.normalise import text as normalise_text
    from wirestream.transforms.tag import text
    from wirestream.transforms.tag.gazetteer import load_gazetteer
    from wirestream.transforms.tag.rules import load_rules
    if settings.parse_only:
        return  # parsing loads nothing worth sharing
    try:
        language.load_kernels()
        normalise_text.load_kernels()
        language.normalise_language_tag("en")  # loads the ISO 639 codes
        load_gazetteer(settings.tag_data_dir)
        load_rules(settings.tag_data_dir)
        text.load_kernels()
        sketch.load_kernels(settings.dedup)
    except Exception:  # noqa: BLE001 - e.g. a broken --tag-data-dir file: each story's
        pass  # stage then fails on it and says so in its dead letter


def _start_worker(settings: ChainSettings) -> None:
    """Runs once, in the process the workers are forked from, which runs only our stages."""
    with without_blas():
        warm_up(settings)
    # What the stages loaded lives as long as the worker: the collector need not scan it again.
    gc.freeze()


def start_local_workers(count: int, settings: ChainSettings) -> int:
    """Forks ``count`` worker processes for StoryChain in this process (none
    for a count below 2: the chain then runs inline). Returns how many run."""
    global _WORKERS
    if count < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return 0
    # Objects that exist now are left alone by the collector: otherwise its
    # passes in the workers would write to (and so copy) the shared pages.
    gc.freeze()
    # A story makes thousands of short-lived containers: collected every 700
    # allocations (the default), many survive into older generations only to be
    # scanned again there. With a larger first generation they die uncollected;
    # cycles are still collected.
    global _THRESHOLDS
    _THRESHOLDS = gc.get_threshold()
    gc.set_threshold(*_COLLECTOR_THRESHOLDS)
    _WORKERS = WarmWorkers(count, functools.partial(_start_worker, settings))
    return count


def stop_local_workers(finished: bool = True) -> None:
    """Ends the workers: after their last task, or at once when the run did not finish."""
    global _WORKERS
    if _WORKERS is not None:
        if finished:
            _WORKERS.close()
        else:
            _WORKERS.terminate()
        _WORKERS.join()
    _WORKERS = None
    gc.unfreeze()
    if _THRESHOLDS is not None:
        gc.set_threshold(*_THRESHOLDS)


class _StoryChainDoFn(beam.DoFn):
    def __init__(self, settings: ChainSettings):
        self._settings = settings

    def setup(self):
        self._counters = {stage: StageCounters(stage) for stage in self._settings.stages}

    def start_bundle(self):
        self._batch: list[RawRecord] = []
        self._pending: deque = deque()

    def process(self, raw):
        self._batch.append(raw)
        if len(self._batch) >= BATCH_STORIES:
            yield from self._submit()

    def finish_bundle(self):
        for out in self._submit():
            yield _windowed(out)
        while self._pending:
            for out in self._emit(self._pending.popleft()):
                yield _windowed(out)

    def _submit(self):
        batch, self._batch = self._batch, []
        if not batch:
            return
        if _WORKERS is None:
            run = run_chain if self._settings.parse_only else run_chain_encoded
            yield from self._emit(run(batch, self._settings))
            return
        self._pending.append(_WORKERS.apply_async(run_chain_encoded, (batch, self._settings)))
        # A few tasks queued per worker keep it busy; more would only hold memory.
        while len(self._pending) > 2 * _WORKERS.count or (self._pending and self._pending[0].ready()):
            yield from self._emit(self._pending.popleft())

    def _emit(self, result):
        if not isinstance(result, ChainResult):
            result = result.get()
        for stage, counters in self._counters.items():
            failed = result.failed[stage]
            counters.count(result.passed[stage], failed)
            for dead in failed:
                if dead.error_kind == "code":
                    counters.log_code_error(dead)
        for dead in result.dead_letters:
            yield pvalue.TaggedOutput(DEAD_LETTERS, dead)
        if self._settings.parse_only and result.encoded:
            yield from map(_RECORD_CODER.decode, result.outputs)
        else:
            yield from result.outputs


def _windowed(out):
    """finish_bundle's outputs carry their window: the bounded graph's one, global."""
    if isinstance(out, pvalue.TaggedOutput):
        return pvalue.TaggedOutput(out.tag, _windowed(out.value))
    return WindowedValue(out, MIN_TIMESTAMP, (GlobalWindow(),))


class StoryChain(beam.PTransform):
    """RawRecords -> (finished records, dead letters): parse, normalise, tag and
    sketch (or, parse-only, parse and the unnormalised record) in one step.
    With dedup, the finished outputs are ``SketchedBatch`` tuples of records
    encoded by EventRecordCoder, for ``BatchClusters(..., record_coder=EventRecordCoder())``."""

    def __init__(self, settings: ChainSettings, output_type: Any = Any):
        super().__init__()
        self._settings = settings
        # The records' type picks their coder where Beam materialises them.
        self._output_type = output_type

    def expand(self, raw_records):
        results = (raw_records
                   | beam.ParDo(_StoryChainDoFn(self._settings)).with_output_types(self._output_type)
                   .with_outputs(DEAD_LETTERS, main="records"))
        return results.records, results[DEAD_LETTERS]
