"""The stage wrapper: bad input is a data error, anything else is our bug and says so."""

from apache_beam import pvalue

from wirestream.schemas import DataError, DeadLetter, Origin, RawRecord, validator
from wirestream.transforms.parse import ParseError
from wirestream.transforms.stage import StageDoFn

ORIGIN = Origin(kind="file", ingested_at="2024-06-24T12:00:00Z", path="in.jsonl", line=3)
RAW = RawRecord(b'{"title": "t"}', ORIGIN, "json")


def run_stage(fn, element=RAW):
    return list(StageDoFn("normalise", fn).process(element))


def dead_letter_of(outputs) -> DeadLetter:
    (out,) = outputs
    assert isinstance(out, pvalue.TaggedOutput) and out.tag == "dead_letters"
    return out.value


def test_a_data_error_is_a_data_dead_letter_without_traceback():
    def reject(_):
        raise ParseError("no headline and no body")
    dead = dead_letter_of(run_stage(reject))
    assert dead.error_kind == "data" and dead.traceback is None
    assert dead.error == "ParseError: no headline and no body"
    assert dead.raw == RAW.payload and dead.origin == ORIGIN
    assert issubclass(ParseError, DataError)


def test_an_unexpected_exception_is_a_code_error_with_its_type_and_traceback():
    def buggy(record):
        return record.no_such_field
    dead = dead_letter_of(run_stage(buggy))
    assert dead.error_kind == "code" and dead.stage == "normalise"
    assert dead.error.startswith("AttributeError: ") and "no_such_field" in dead.error
    assert dead.traceback.startswith("Traceback (most recent call last)")
    assert "in buggy" in dead.traceback and "record.no_such_field" in dead.traceback
    document = dead.to_dict()
    assert document["error_kind"] == "code" and document["traceback"] == dead.traceback
    assert not list(validator("dead_letter").iter_errors(document))


def test_a_code_error_is_logged_with_its_traceback_at_the_default_level(caplog):
    def buggy(_):
        raise KeyError("published")
    import logging
    with caplog.at_level(logging.ERROR):
        run_stage(buggy)
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "code error in stage normalise" in record.getMessage() and "in.jsonl" in record.getMessage()
    assert record.exc_info and record.exc_info[0] is KeyError
