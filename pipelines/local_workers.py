"""Worker processes forked from one warmed-up process, for a bounded local run.

``WarmWorkers(count, warm_up)`` forks one process (the nursery), which runs
``warm_up`` (loads gazetteers, language profiles, compiled kernels) and only
then forks the ``count`` workers: they share what it loaded, so a run loads
the stages once, not once per worker, and while it does, the command builds
and starts its pipeline on the other core. multiprocessing's Pool forks every
worker from the command itself, so each would load them again.

Tasks are functions and arguments that pickle; results come back in the order
of submission per worker, read as soon as they are sent. A worker that dies
fails the tasks it held (``WorkerLost``) instead of leaving them waiting
forever, as a Pool would.
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

    def __init__(self, message: str = "a local worker process ended before it answered"):
        super().__init__(message)  # the message as an argument: the exception pickles


class PendingResult:
    """One task's result, once its worker has answered."""

    def __init__(self):
        self._answered = threading.Event()
        self._value: Any = None
        self._error: Optional[BaseException] = None

    def _set(self, ok: bool, value: Any) -> None:
        if ok:
            self._value = value
        else:
            self._error = value
        self._answered.set()

    def ready(self) -> bool:
        return self._answered.is_set()

    def get(self) -> Any:
        self._answered.wait()
        if self._error is not None:
            raise self._error
        return self._value


class _Worker:
    """The command's end of one worker. Tasks go out through one thread and
    answers come in through another, as soon as they are ready: a worker whose
    answer is larger than the pipe's buffer would otherwise wait, idle, until
    the command asked for that answer (it asks in the order it submitted, so
    often for the other worker's first), and a task larger than the buffer
    must not block the command while the worker is itself blocked sending."""

    def __init__(self, connection):
        self._connection = connection
        self._lock = threading.Lock()
        self._waiting: deque[PendingResult] = deque()  # answers due, in order
        self._lost = False
        self._outbox: queue.Queue = queue.Queue()
        self._sender = threading.Thread(target=self._send_all, daemon=True)
        self._receiver = threading.Thread(target=self._receive_all, daemon=True)
        self._sender.start()
        self._receiver.start()

    def _send_all(self) -> None:
        while True:
            task = self._outbox.get()
            try:
                self._connection.send(task)  # None, the last, tells the worker to end
            except (OSError, ValueError):  # the worker is gone: the receiver reports it
                return
            if task is None:
                return

    def _receive_all(self) -> None:
        while True:
            try:
                ok, value = self._connection.recv()
            except (EOFError, OSError):  # the worker ended
                break
            with self._lock:
                pending = self._waiting.popleft()
            pending._set(ok, value)
        with self._lock:
            self._lost = True
            unanswered, self._waiting = list(self._waiting), deque()
        lost = WorkerLost()
        for pending in unanswered:
            pending._set(False, lost)

    def submit(self, fn: Callable, args: tuple) -> PendingResult:
        pending = PendingResult()
        with self._lock:
            if self._lost:
                pending._set(False, WorkerLost())
                return pending
            self._waiting.append(pending)
        self._outbox.put((fn, args))
        return pending

    @property
    def busy(self) -> int:
        """Tasks submitted and not yet answered."""
        return len(self._waiting)

    def close(self) -> None:
        """No more tasks: the worker ends after answering those it has."""
        self._outbox.put(None)

    def join(self) -> None:
        self._sender.join()
        self._receiver.join()
        self._connection.close()


def _serve(connection) -> None:
    """A worker's loop: each task's result, or the exception it raised, in order."""
    while True:
        try:
            task = connection.recv()
        except EOFError:  # the command is gone
            return
        if task is None:  # no more tasks
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
        """Runs ``fn(*args)`` in the worker with the fewest tasks not yet answered."""
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
        for worker in self._workers:
            worker.join()
        try:
            os.waitpid(self._nursery_pid, 0)
        except ChildProcessError:  # already waited for
            pass
