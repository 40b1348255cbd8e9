"""Record types and their JSON Schema files."""

import json
from functools import lru_cache
from pathlib import Path

from wirestream.schemas.records import (  # noqa: F401
    SCHEMA_VERSION, DataError, DeadLetter, EventRecord, Origin, RawRecord, Story, Subject,
    content_digest, derive_event_id)

SCHEMA_DIR = Path(__file__).parent


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    """``load_schema("event_record")`` -> the versioned JSON Schema document."""
    return json.loads((SCHEMA_DIR / f"{name}.v1.schema.json").read_text("utf-8"))


def validator(name: str):
    """A jsonschema validator for ``event_record`` or ``dead_letter`` documents,
    with the shared ``origin`` schema resolved locally (no network)."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    registry = Registry().with_resources(
        (load_schema(n)["$id"], Resource.from_contents(load_schema(n)))
        for n in ("origin", "event_record", "dead_letter"))
    return Draft202012Validator(load_schema(name), registry=registry)
