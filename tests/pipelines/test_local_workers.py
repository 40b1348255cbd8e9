"""Workers forked from one warmed-up process: what the warm-up loaded is theirs
without loading it again, answers come back in order, failures are reported."""

import os
import signal
import time

import pytest

from wirestream.pipelines.local_workers import WarmWorkers, WorkerLost

_WARMED: list[int] = []  # pids of the processes that ran the warm-up


def _warm_up():
    _WARMED.append(os.getpid())


def _who(x):
    return x, os.getpid(), os.getppid(), list(_WARMED)


def _fail(message):
    raise ValueError(message)


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def _large_answer():
    return b"x" * (8 << 20)  # far more than a pipe holds


def _touch(path):
    with open(path, "w"):
        pass


def test_the_workers_share_one_warm_up_and_answer_in_order():
    workers = WarmWorkers(2, _warm_up)
    try:
        pending = [workers.apply_async(_who, (i,)) for i in range(20)]
        answers = [p.get() for p in pending]
    finally:
        workers.close()
        workers.join()
    assert [x for x, *_ in answers] == list(range(20))
    pids = {pid for _, pid, _, _ in answers}
    parents = {parent for _, _, parent, _ in answers}
    warmed = {tuple(w) for *_, w in answers}
    assert len(pids) == 2 and os.getpid() not in pids  # both workers took tasks
    assert len(parents) == 1 and parents != {os.getpid()}  # forked by the one process...
    assert warmed == {tuple(parents)}  # ...which ran the warm-up, once
    assert _WARMED == []  # not in the command


def test_a_task_that_raises_raises_in_the_caller_and_the_worker_goes_on():
    workers = WarmWorkers(2, _warm_up)
    try:
        failed = workers.apply_async(_fail, ("no such story",))
        with pytest.raises(ValueError, match="no such story"):
            failed.get()
        assert [workers.apply_async(_who, (i,)).get()[0] for i in range(4)] == [0, 1, 2, 3]
    finally:
        workers.close()
        workers.join()


def test_a_worker_that_dies_fails_its_task_instead_of_leaving_it_waiting():
    workers = WarmWorkers(2, _warm_up)
    try:
        lost = workers.apply_async(_die)
        with pytest.raises(WorkerLost):
            lost.get()
    finally:
        workers.terminate()
        workers.join()


def test_a_worker_goes_on_while_its_large_answer_waits_to_be_asked_for(tmp_path):
    # The caller asks for nothing: the worker's next task runs all the same (its
    # answer is read as it comes, so the worker is not left blocked sending it).
    workers = WarmWorkers(1, _warm_up)
    marker = tmp_path / "second task ran"
    try:
        large = workers.apply_async(_large_answer)
        workers.apply_async(_touch, (str(marker),))
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists()
        assert large.get() == _large_answer()
    finally:
        workers.close()
        workers.join()


def test_terminate_ends_every_worker_at_once():
    workers = WarmWorkers(2, _warm_up)
    pids = {p.get()[1] for p in [workers.apply_async(_who, (i,)) for i in range(4)]}
    busy = workers.apply_async(time.sleep, (60,))
    started = time.monotonic()
    workers.terminate()
    workers.join()
    assert time.monotonic() - started < 10
    with pytest.raises(WorkerLost):
        busy.get()
    time.sleep(0.2)
    assert all(_ended(pid) for pid in pids)


def _ended(pid: int) -> bool:
    """Gone, or a zombie (killed, not yet reaped by whoever adopted it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
