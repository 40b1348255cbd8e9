"""Running an unbounded pipeline until Ctrl-C (SIGINT) or SIGTERM.

On the local streaming runner (``wirestream.pipelines.local_runner``, what the CLI
picks for an unbounded source) records reach the sinks and offsets are
committed while the run is live. Beam's plain FnApiRunner and the portable
embed runner hold records at the first stage boundary until the readers stop.
On any in-process runner the first signal asks every Kafka reader to finish
where it is; the pipeline then drains like a bounded one: buffered stages
emit, sinks flush, and offsets are committed for what was written. A second
signal stops at once (exit 130; nothing is lost: uncommitted records are read
again on restart). Prism and Flink embedded (any job runner with LOOPBACK workers, which
run the readers in this process) are asked the same way: ``run()`` returns at
once, the first signal stops the readers, and the job is waited for until it
is done, however long the drain takes. Where the readers run elsewhere (Flink or Dataflow workers) the
signal cannot reach them: the job is cancelled after ``DRAIN_SECONDS``, or
at once on a second signal; drain such a job with the runner's own tools to
flush.
"""

from __future__ import annotations

import signal
import threading
import time

from apache_beam.options.pipeline_options import PortableOptions
from apache_beam.runners.runner import PipelineState

from wirestream.transforms.io.kafka import request_stop_reading, reset_stop_reading

_POLL_SECONDS = 0.5
DRAIN_SECONDS = 30.0  # how long a job whose readers run elsewhere may take to drain after the first signal


def drain_deadline(options) -> float | None:
    """Seconds a job runner's job may drain after the first signal before it is
    cancelled; None: as long as it takes. LOOPBACK workers (Prism, Flink
    embedded) run the readers in this process, so the signal stops them and the
    job drains by itself however much state its expiry timers hold (Flink
    embedded took 28 s after 1,270 stories); a second signal still stops at once."""
    return None if options.view_as(PortableOptions).environment_type == "LOOPBACK" else DRAIN_SECONDS


def run_until_interrupted(pipeline):
    """Runs the pipeline; returns its PipelineResult once it has stopped."""
    stopping = threading.Event()

    def on_signal(signum, _frame):
        if stopping.is_set():
            raise KeyboardInterrupt
        stopping.set()
        request_stop_reading()

    reset_stop_reading()
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = pipeline.run()  # in-process runners return only once drained
        if PipelineState.is_terminal(result.state):
            result.wait_until_finish()
            return result
        # A job runner. Beam's job server wrapper (StopOnExitJobServer) took
        # SIGINT on start to kill the job server (Prism) at once, which drops
        # a live job instead of draining it: take SIGINT back; Beam still stops
        # the job server at exit. Wait in a thread (once the job is done, Beam
        # closes the job service channel, so its state cannot be polled).
        signal.signal(signal.SIGINT, on_signal)
        finished, failure = threading.Event(), []

        def wait():
            try:
                result.wait_until_finish()
            except BaseException as exc:  # re-raised in the main thread
                failure.append(exc)
            finally:
                finished.set()

        threading.Thread(target=wait, name="wait-for-job", daemon=True).start()
        # Read after run(): the runner fills in the environment it chose (Flink [local]: LOOPBACK).
        deadline = drain_deadline(pipeline.options)
        drain_until = None
        while not finished.wait(_POLL_SECONDS):
            if stopping.is_set() and drain_until is None and deadline is not None:
                drain_until = time.monotonic() + deadline
            if drain_until is not None and time.monotonic() > drain_until:
                result.cancel()
                finished.wait()
                break
        if failure:
            raise failure[0]
        return result
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        reset_stop_reading()
