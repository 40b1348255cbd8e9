"""Worker processes forked from one warmed-up process, for a bounded local run.

``WarmWorkers(count, warm_up)`` forks one process (the nursery), which runs
``warm_up`` (loads gazetteers, language profiles, compiled kernels) and only
then forks the ``count`` workers: they share what it loaded, so a run loads
the stages once, not once per worker, and while it does, the command builds
and starts its pipeline on the other core. multiprocessing's Pool forks every
worker from the command itself, so each would load them again.

Tasks are functions and arguments that pickle; results come back in the order
of submission per worker. A worker that dies fails the task it held
(``WorkerLost``) instead of leaving it waiting forever, as a Pool would.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import threading
from collections import deque
from typing import Any, Callable, Optional


class WorkerLost(RuntimeError):
    """A worker process ended before it answered."""


class PendingResult:
    """One task's result, once its worker has answered."""

    def __init__(self, worker: "_Worker"):
        self._worker = worker
        self._done = False
        self._value: Any = None
        self._error: Optional[BaseException] = None

    def _set(self, ok: bool, value: Any) -> None:
        self._done = True
        if ok:
            self._value = value
        else:
            self._error = value

    def ready(self) -> bool:
        if not self._done:
            self._worker.collect(block=False)
        return self._done

    def get(self) -> Any:
        while not self._done:
            self._worker.collect(block=True)
        if self._error is not None:
            raise self._error
        return self._value


class _Worker:
    """The command's end of one worker: tasks go out through a thread (a task
    larger than the pipe's buffer must not block the command while the worker
    is itself blocked sending a result), answers are read in order."""

    def __init__(self, connection):
        self._connection = connection
        self._waiting: deque[PendingResult] = deque()
        self._outbox: queue.Queue = queue.Queue()
        self._sender = threading.Thread(target=self._send_all, daemon=True)
        self._sender.start()

    def _send_all(self) -> None:
        while (task := self._outbox.get()) is not None:
            try:
                self._connection.send(task)
            except (OSError, ValueError):  # the worker is gone: collect() reports it
                return

    def submit(self, fn: Callable, args: tuple) -> PendingResult:
        pending = PendingResult(self)
        self._waiting.append(pending)
        self._outbox.put((fn, args))
        return pending

    @property
    def busy(self) -> int:
        return len(self._waiting)

    def collect(self, block: bool) -> None:
        """Reads the answers that have come (one at least if ``block``)."""
        while self._waiting and (block or self._connection.poll()):
            try:
                ok, value = self._connection.recv()
            except (EOFError, OSError):
                lost = WorkerLost("a local worker process ended before it answered")
                while self._waiting:
                    self._waiting.popleft()._set(False, lost)
                return
            self._waiting.popleft()._set(ok, value)
            block = False

    def close(self) -> None:
        self._outbox.put(None)
        self._sender.join()
        self._connection.close()


def _serve(connection) -> None:
    """A worker's loop: each task's result, or the exception it raised, in order."""
    while True:
        try:
            task = connection.recv()
        except EOFError:  # the command closed its end: no more tasks
            return
        fn, args = task
        try:
            answer = (True, fn(*args))
        except BaseException as exc:  # noqa: BLE001 - the command decides what it means
            answer = (False, exc)
        connection.send(answer)


def _nursery(children: list, warm_up: Callable[[], None]) -> None:
    os.setpgid(0, 0)  # its own process group, with the workers: terminate() ends them all
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the command's to handle: it stops the workers
    warm_up()
    pids = []
    for connection in children:
        pid = os.fork()
        if pid == 0:
            for other in children:
                if other is not connection:
                    other.close()
            try:
                _serve(connection)
            finally:
                os._exit(0)
        pids.append(pid)
    for connection in children:
        connection.close()
    for pid in pids:
        os.waitpid(pid, 0)


class WarmWorkers:
    """``count`` worker processes forked from one process that ran ``warm_up``."""

    def __init__(self, count: int, warm_up: Callable[[], None]):
        pipes = [multiprocessing.Pipe(duplex=True) for _ in range(count)]
        self._nursery_pid = os.fork()
        if self._nursery_pid == 0:
            try:
                for ours, _ in pipes:
                    ours.close()
                _nursery([theirs for _, theirs in pipes], warm_up)
            finally:
                os._exit(0)
        try:
            os.setpgid(self._nursery_pid, self._nursery_pid)  # set on both sides: no race with terminate()
        except OSError:  # it has already set it (and maybe ended)
            pass
        for _, theirs in pipes:
            theirs.close()
        self._workers = [_Worker(ours) for ours, _ in pipes]

    @property
    def count(self) -> int:
        return len(self._workers)

    def apply_async(self, fn: Callable, args: tuple = ()) -> PendingResult:
        """Runs ``fn(*args)`` in the worker with the fewest tasks waiting."""
        return min(self._workers, key=lambda w: w.busy).submit(fn, args)

    def close(self) -> None:
        """No more tasks: each worker ends after its last (``join`` waits for them)."""
        for worker in self._workers:
            worker.close()

    def terminate(self) -> None:
        """Ends the workers at once."""
        try:
            os.killpg(self._nursery_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for worker in self._workers:
            worker.close()

    def join(self) -> None:
        try:
            os.waitpid(self._nursery_pid, 0)
        except ChildProcessError:  # already waited for
            pass
