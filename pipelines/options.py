"""Typed pipeline options for ``wirestream run``.

They are Beam PipelineOptions, so the same flags reach remote workers and
templates; Beam's own options (``--runner``, ``--streaming``...) pass through.
"""

from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions

# FnApiRunner: Beam's DirectRunner first tries to download the Prism runner,
# which needs the network; this runner is local, in-process and offline.
DEFAULT_RUNNER = "FnApiRunner"


class WirestreamOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        group = parser.add_argument_group("wirestream")
        group.add_argument(
            "--source", required=False,
            help="Archive file, directory or glob (.jsonl[.gz], .json, .xml, .sgm, .txt), "
                 "or kafka://HOST:PORT/TOPIC?... ")
        group.add_argument("--sink", default="jsonl:./out",
                           help="Where event records go: jsonl:DIR, parquet:DIR, "
                                "kafka://HOST:PORT/TOPIC, postgresql://USER@HOST:PORT/DB?table=T")
        group.add_argument("--dead_letter", "--dead-letter", dest="dead_letter", default=None,
                           help="Where dead letters go (default: derived from --sink, e.g. "
                                "jsonl:DIR/dead-letter).")
        group.add_argument("--drop_duplicates", "--drop-duplicates", dest="drop_duplicates",
                           action="store_true", default=False,
                           help="Leave duplicates out of the sink (they are still counted).")
        group.add_argument("--max_payload_bytes", "--max-payload-bytes", dest="max_payload_bytes",
                           type=int, default=5 * 1024 * 1024,
                           help="Stories larger than this go to the dead letters.")
        group.add_argument("--max_file_bytes", "--max-file-bytes", dest="max_file_bytes",
                           type=int, default=256 * 1024 * 1024,
                           help="Archive files (and JSONL lines) are read up to this size; a "
                                "feed or news message may hold this much, each story in it "
                                "held to --max-payload-bytes.")
        group.add_argument("--default_timezone", "--default-timezone", dest="default_timezone",
                           default="UTC",
                           help="IANA zone for publication times written without one.")
        group.add_argument("--source_timezone", "--source-timezone", dest="source_timezone",
                           action="append", default=None, metavar="SOURCE=ZONE",
                           help="Zone for one source's naive times, e.g. "
                                "Reuters=America/New_York; repeatable.")
        group.add_argument("--num_shards", "--num-shards", dest="num_shards", type=int, default=4,
                           help="Files per record kind for file sinks in a bounded run.")
        group.add_argument("--file_roll_seconds", "--file-roll-seconds", dest="file_roll_seconds",
                           type=float, default=60.0,
                           help="Streaming file sinks: close a file after this many seconds.")
        group.add_argument("--file_roll_mb", "--file-roll-mb", dest="file_roll_mb", type=int,
                           default=64, help="Streaming file sinks: ... or after this many MB.")
        group.add_argument("--file_roll_records", "--file-roll-records", dest="file_roll_records",
                           type=int, default=100_000,
                           help="Streaming file sinks: ... or after this many records.")
        group.add_argument("--dedup_window_days", "--dedup-window-days", dest="dedup_window_days",
                           type=float, default=7.0,
                           help="Stories further apart than this in publication time never "
                                "cluster as near-duplicates.")
        group.add_argument("--dedup_threshold", "--dedup-threshold", dest="dedup_threshold",
                           type=float, default=0.8,
                           help="Minimum estimated containment of the shorter body's word "
                                "3-shingles in the other for a near-duplicate.")
        group.add_argument("--dedup_lateness_days", "--dedup-lateness-days", dest="dedup_lateness_days",
                           type=float, default=7.0,
                           help="Streaming: a story arriving (by the watermark) up to the window "
                                "plus this long after a story it matches still corrects the "
                                "clusters of stories already written (they are written again "
                                "with a higher cluster_revision); state is kept that long.")
        group.add_argument("--parse_only", "--parse-only", dest="parse_only", action="store_true",
                           default=False,
                           help="Write records straight after parsing: no dates, languages, "
                                "clusters or tags (raw archiving; the benchmark's floor).")
        group.add_argument("--tag_data_dir", "--tag-data-dir", dest="tag_data_dir", default=None,
                           help="Directory of edited tagging data files (gazetteers, rules); "
                                "a file found there replaces the packaged one.")


class KafkaOptions(PipelineOptions):
    """Client settings for kafka:// sources and sinks (passed to kafka-python)."""

    @classmethod
    def _add_argparse_args(cls, parser):
        group = parser.add_argument_group("kafka")
        group.add_argument("--kafka_config", "--kafka-config", dest="kafka_config",
                           action="append", default=None, metavar="KEY=VALUE",
                           help="A Kafka client setting (security_protocol, sasl_mechanism, "
                                "ssl_cafile, request_timeout_ms, ...); repeatable.")
        group.add_argument("--kafka_config_file", "--kafka-config-file", dest="kafka_config_file",
                           default=None, metavar="PATH",
                           help="A properties file of Kafka client settings (key=value lines).")
        group.add_argument("--kafka_discovery_interval", "--kafka-discovery-interval",
                           dest="kafka_discovery_interval", type=float, default=30.0,
                           help="Seconds between checks for new partitions (streaming).")


class LaunchOptions(PipelineOptions):
    """How the command line launches the pipeline; not used by the graph."""

    @classmethod
    def _add_argparse_args(cls, parser):
        group = parser.add_argument_group("launch")
        # Beam's TestOptions already owns --dry_run (dest dry_run, with a value), hence
        # the hyphen only and a dest of our own.
        group.add_argument("--dry-run", dest="describe_only", action="store_true",
                           default=False,
                           help="Build and validate the pipeline for its runner, print the "
                                "resolved options and the graph, submit nothing.")
        group.add_argument("--errors_tolerance", "--errors-tolerance", dest="errors_tolerance",
                           choices=("none", "all"), default="none",
                           help="Code errors (an unexpected exception in wirestream, not bad "
                                "input) are always dead-lettered with their traceback and "
                                "counted as errors=N; none (default): a run with any exits 1; "
                                "all: it exits 0 (as Kafka Connect's errors.tolerance).")
        group.add_argument("--local_workers", "--local-workers", dest="local_workers", type=int,
                           default=None,
                           help="Bounded runs on the local runner: worker processes that parse, "
                                "normalise, tag and sketch stories, forked once the gazetteers "
                                "are loaded (default: the cores this process may use; 1: all "
                                "in the one process). Output is the same for any number.")
        group.add_argument("--progress", dest="progress", choices=("auto", "on", "off"),
                           default="auto",
                           help="Progress display for archive runs on stderr (auto: when "
                                "stderr is a terminal).")


class FlinkStateOptions(PipelineOptions):
    """Passed through to Beam's Flink runner, so an upgrade can restore a savepoint."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--savepoint_path", default=None,
                            help="Flink: restore the job from this savepoint.")
        parser.add_argument("--allow_non_restored_state", action="store_true", default=False,
                            help="Flink: allow savepoint state that no operator claims.")
