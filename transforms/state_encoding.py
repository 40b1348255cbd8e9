"""How state a runner keeps across restarts is encoded: an explicit, versioned
format, never pickle.

A runner keeps state and restrictions in its checkpoints and savepoints. Pickled,
they name our classes by module path and field layout, so a release that moves or
reshapes a class cannot restore them (renaming the packages to ``wirestream.*``
was such a move). Here each value is one version byte, then a tuple of primitives
(ints, strings, bytes, floats, None, lists, tuples, dicts) in Beam's
``FastPrimitivesCoder`` format, which never pickles: anything else is an error,
not a silent fallback. A release that changes a value's shape adds a reader for
the new version and keeps every earlier one, so a savepoint taken by one release
restores in the next; tests decode values written by earlier versions.

A version whose reader is wrapped in ``Packed`` is written as the version byte and
the bytes ``to_wire`` gives, without the primitives' framing: for values that
are bytes of a layout of their own (packed rows, compressed text), where that
framing would be most of a small value.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from apache_beam import coders


class _NoPickle(coders.Coder):
    def encode(self, value):
        raise TypeError(f"state holds a {type(value).__name__}, which has no explicit encoding")

    def decode(self, encoded):
        raise TypeError("state was written with a fallback encoding")

    def is_deterministic(self):
        return True


_PRIMITIVES = coders.FastPrimitivesCoder(fallback_coder=_NoPickle())


class Packed(NamedTuple):
    """A reader of a version written as bytes as they are: ``read(bytes) -> value``."""

    read: Callable[[bytes], Any]


class VersionedStateCoder(coders.Coder):
    """``to_wire(value) -> primitives``; ``readers[version](primitives) -> value``.
    Values are written in the newest version that has a reader; when that reader
    is ``Packed``, ``to_wire`` gives bytes, written as they are."""

    def __init__(self, name: str, to_wire: Callable[[Any], Any], readers: dict[int, Callable[[Any], Any]]):
        self._name, self._to_wire, self._readers = name, to_wire, readers
        self.version = max(readers)
        self._packed = isinstance(readers[self.version], Packed)
        self._prefix = bytes([self.version])

    def encode(self, value) -> bytes:
        wire = self._to_wire(value)
        return self._prefix + (wire if self._packed else _PRIMITIVES.encode(wire))

    def decode(self, encoded: bytes):
        reader = self._readers.get(encoded[0])
        if reader is None:
            raise ValueError(f"{self._name} state of version {encoded[0]}: this release reads "
                             f"versions {sorted(self._readers)}")
        if isinstance(reader, Packed):
            return reader.read(bytes(encoded[1:]))
        return reader(_PRIMITIVES.decode(encoded[1:]))

    def is_deterministic(self) -> bool:
        return True

    def __eq__(self, other):
        return type(self) is type(other) and self._name == other._name

    def __hash__(self):
        return hash((type(self), self._name))
