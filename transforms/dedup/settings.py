"""What de-duplication is asked to do: the window, thresholds, sketch sizes, the bucket policy and the streaming lateness."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


DAY = 86_400


@dataclass(frozen=True)
class DedupSettings:
    window_days: float = 7.0  # stories further apart in publication time never cluster
    threshold: float = 0.8  # min estimated containment of body word 3-shingles
    min_jaccard: float = 0.3  # a one-paragraph brief inside a long feature is not a copy of it
    update_threshold: float = 0.5  # min containment linking a "CORRECTED -" reissue to its original
    num_perm: int = 128
    bands: int = 32  # bands * rows_per_band must not exceed num_perm
    short_body_words: int = 40  # below this the headline must name the same company/subject
    streaming: bool = False
    # streaming: how long after the stories it matches (arrival time, by the runner's
    # watermark) a story may arrive and still correct what was written; the window by
    # default, so any arrival order within it gives the batch clusters
    allowed_lateness_days: float = 7.0
    # batch: keys of the bucket shuffle (parallelism, not results); with 1, as a run in one
    # process has, the whole clustering is one step (``decided_in_memory``), without shuffles
    band_partitions: int = 16
    # The bucket policy (``compared_members``): earlier members of a bucket a story is compared with.
    compare_earliest: int = 4
    compare_latest: int = 4
    # batch, one partition: a directory every process of the run shares, where the
    # stories' sketches wait for the one step (``transforms.spill``), not in Beam's elements
    spill_dir: Optional[str] = None

    def __post_init__(self):
        if self.bands < 1 or self.num_perm // self.bands < 1:
            raise ValueError("need 1 <= bands <= num_perm")
        if self.spill_dir is not None and self.band_partitions != 1:
            raise ValueError("sketches are spilled only for the one-step clustering (band_partitions=1)")

    @property
    def rows_per_band(self) -> int:
        return self.num_perm // self.bands

    @property
    def window_seconds(self) -> int:
        return int(self.window_days * DAY)

    @property
    def lateness_seconds(self) -> int:
        return int(self.allowed_lateness_days * DAY)

    @property
    def retention_seconds(self) -> int:
        return int((self.window_days + self.allowed_lateness_days) * DAY)
