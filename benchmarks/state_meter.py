"""Bytes that user state writes and holds, as they cross Beam's state API in a
run of the local runner (FnApiRunner's state servicer, which the SDK calls for
every bag append and every ReadModifyWrite value it commits)."""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field

from apache_beam.runners.portability.fn_api_runner import worker_handlers


@dataclass
class StateMeter:
    written: Counter = field(default_factory=Counter)  # user state id -> bytes appended
    _held: dict = field(default_factory=dict)  # state key -> (user state id, bytes)

    def held(self) -> Counter:
        """Bytes held now, by user state id."""
        total = Counter()
        for state_id, size in self._held.values():
            total[state_id] += size
        return total

    def keys_held(self) -> int:
        return sum(1 for _, size in self._held.values() if size)


@contextlib.contextmanager
def metered_state():
    """Counts user state bytes while it lasts (the runner must run in this process)."""
    meter = StateMeter()
    servicer = worker_handlers.StateServicer
    append_raw, clear = servicer.append_raw, servicer.clear

    def metered_append(self, state_key, data):
        if state_key.WhichOneof("type") == "bag_user_state":
            state_id, key = state_key.bag_user_state.user_state_id, state_key.SerializeToString()
            meter.written[state_id] += len(data)
            meter._held[key] = (state_id, meter._held.get(key, (state_id, 0))[1] + len(data))
        return append_raw(self, state_key, data)

    def metered_clear(self, state_key):
        if state_key.WhichOneof("type") == "bag_user_state":
            meter._held.pop(state_key.SerializeToString(), None)
        return clear(self, state_key)

    servicer.append_raw, servicer.clear = metered_append, metered_clear
    try:
        yield meter
    finally:
        servicer.append_raw, servicer.clear = append_raw, clear
