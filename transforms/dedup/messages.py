"""Messages between the streaming steps, one type per kind, each keyed by the
bucket or story it is sent to."""

from __future__ import annotations

from typing import NamedTuple, Optional

from wirestream.schemas import EventRecord
from wirestream.transforms.dedup.relate import Relation


class JoinBucket(NamedTuple):
    """ProbeBands -> MatchInBucket: a story enters one of its buckets."""

    uid: str
    time: int  # publication time
    buckets: int  # how many buckets the story is in: the bucket answers to wait for
    sketch: bytes  # the story's sketch, encoded (``state_coder.SKETCH``): passed on, never stored here


class StoreSketch(NamedTuple):
    """ProbeBands -> RelateAtStory: the story's own sketch, encoded, stored once."""

    sketch: bytes  # without its uid (None), which is the key it is sent to


class CompareWith(NamedTuple):
    """MatchInBucket -> RelateAtStory (a stored candidate): relate this later arrival to it."""

    sketch: bytes  # the asking story's sketch, encoded


class BucketAnswered(NamedTuple):
    """MatchInBucket -> CollectRelations: the candidates some of the story's buckets
    named (all of them, in one message, when they came in one bundle)."""

    buckets: int  # how many buckets the story is in
    answered: int  # how many of them this message speaks for
    candidates: list[str]


class Compared(NamedTuple):
    """RelateAtStory -> CollectRelations (the asking story): one candidate compared."""

    uid: str  # the candidate
    relation: Optional[Relation]  # the asking story duplicates or updates the candidate


class LateRelation(NamedTuple):
    """RelateAtStory -> CollectRelations (the stored story): an earlier story arrived after it."""

    relation: Relation


class RegisterRoot(NamedTuple):
    """CollectRelations -> AnswerRootQuestions: the story's root flag, again when it flips."""

    root: bool
    seq: int  # the story's number of relations, which only grows: orders flags


class AskRoot(NamedTuple):
    """CollectRelations -> AnswerRootQuestions: is this predecessor (the key) a root?"""

    asker: str


class RootAnswer(NamedTuple):
    """AnswerRootQuestions -> DecideCluster: a predecessor's root flag."""

    uid: str
    root: bool
    seq: int


class RecordArrived(NamedTuple):
    """The record itself -> DecideCluster."""

    record: EventRecord


class RelationsGrew(NamedTuple):
    """CollectRelations -> DecideCluster: all of the story's relations so far."""

    seq: int
    incoming: list[Relation]
