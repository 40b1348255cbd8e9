"""Running an unbounded pipeline until Ctrl-C (SIGINT) or SIGTERM.

On the local streaming runner (``pipelines.local_runner``, what the CLI
picks for an unbounded source) records reach the sinks and offsets are
committed while the run is live. Beam's plain FnApiRunner and the portable
embed runner hold records at the first stage boundary until the readers stop.
On any in-process runner the first signal asks every Kafka reader to finish
where it is; the pipeline then drains like a bounded one: buffered stages
emit, sinks flush, and offsets are committed for what was written. A second
signal stops at once (exit 130; nothing is lost: uncommitted records are read
again on restart). On a remote runner (Flink, Dataflow) ``run()`` returns at
once and the first signal cancels the job; drain it with the runner's own
tools to flush.
"""

from __future__ import annotations

import signal
import threading

from apache_beam.runners.runner import PipelineState

from transforms.io.kafka_source import request_stop_reading, reset_stop_reading

_POLL_SECONDS = 0.5


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
        while not PipelineState.is_terminal(result.state):
            if stopping.wait(_POLL_SECONDS):
                result.cancel()
                break
        result.wait_until_finish()
        return result
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        reset_stop_reading()
