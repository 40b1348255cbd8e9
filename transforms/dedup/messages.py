"""Messages between the streaming steps, one type per kind, each keyed by the
story (or registry shard) it is sent to."""

from __future__ import annotations

from typing import NamedTuple

from wirestream.schemas import EventRecord
from wirestream.transforms.dedup.relate import Relation


class BandProbe(NamedTuple):
    """ProbeBands -> MatchInBandShard: a story's sketch, to one of its buckets."""

    bucket: int
    sketch: tuple  # a StorySketch
    buckets: int  # how many buckets the story is in: the band answers to wait for


class BandAnswered(NamedTuple):
    """MatchInBandShard -> CollectRelations: what one bucket found for the story."""

    found: list[Relation]  # the story duplicates or updates these earlier ones
    buckets: int
    time: int
    too_late: list[str]  # later matches the story came too late to correct


class LateRelation(NamedTuple):
    """MatchInBandShard -> CollectRelations: an earlier story arrived after this one."""

    relation: Relation


class Released(NamedTuple):
    """MatchInBandShard -> CollectRelations -> DecideCluster: no more late relations
    will be made for the story by the sender."""


class RegisterRoot(NamedTuple):
    """CollectRelations -> AnswerRootQuestions: the story's root flag, again when it flips."""

    uid: str
    root: bool
    time: int
    seq: int  # the story's number of relations, which only grows: orders flags


class AskRoot(NamedTuple):
    """CollectRelations -> AnswerRootQuestions: is this predecessor a root?"""

    asker: str
    uid: str
    time: int  # the predecessor's publication time


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

