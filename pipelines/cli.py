"""The ``wirestream`` command.

    wirestream run --source SOURCE --sink SINK [--dead-letter SINK] [--runner RUNNER] [Beam options]

User errors (bad arguments, unreadable sources, unknown sinks) print one line
and exit 2; a failed pipeline exits 1; success exits 0. A bounded run ends
with one summary line on stderr:
``read=N unique=U duplicates=D dead_letters=L errors=E``, where E counts the
dead letters that are code errors (our bug, not bad input): a run with any
exits 1 unless ``--errors-tolerance all``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import logging
import os
import sys
import threading
import zoneinfo
from dataclasses import dataclass, replace
from typing import Optional, Sequence

# Before Beam is imported: it logs import-time warnings (missing cloud client
# libraries) that mean nothing to a local user. WIRESTREAM_LOG_LEVEL=INFO shows them.
logging.basicConfig(level=os.environ.get("WIRESTREAM_LOG_LEVEL", "ERROR").upper(),
                    format="%(levelname)s %(name)s: %(message)s")

import apache_beam as beam  # noqa: E402
from apache_beam.options.pipeline_options import (DirectOptions, PipelineOptions,  # noqa: E402
                                                  PortableOptions, StandardOptions)

from wirestream.pipelines import engines  # noqa: E402
from wirestream.pipelines.graph import PipelineSettings, Source, build_pipeline, chain_settings  # noqa: E402
from wirestream.pipelines.local_runner import STREAMING_LOCAL_RUNNER, short_sampler_waits, state_cache_off  # noqa: E402
from wirestream.pipelines.masking import (SECRETS, inline_secret_warnings, inline_secrets,  # noqa: E402
                               masked_output, publishes_options)
from wirestream.pipelines.options import DEFAULT_RUNNER, KafkaOptions, LaunchOptions, WirestreamOptions  # noqa: E402
from wirestream.transforms.dedup import DedupSettings  # noqa: E402
from wirestream.transforms.io.archive import ReadArchiveFiles, SourceError, list_archive_files  # noqa: E402
from wirestream.pipelines.sinks import SinkSettings, default_dead_letter_spec, sink_spec  # noqa: E402
from wirestream.pipelines.story_chain import default_local_workers, start_local_workers, stop_local_workers  # noqa: E402
from wirestream.transforms.io.files import FileSinkSettings, RollPolicy  # noqa: E402
from wirestream.transforms.io.sinks import SinkError, redacted_url  # noqa: E402
from wirestream.transforms.normalise import NormaliseSettings  # noqa: E402
from wirestream.transforms.parse import ParseSettings  # noqa: E402
from wirestream.transforms.stage import CODE_ERRORS, counter_totals  # noqa: E402
from wirestream.transforms.spill import spill_directory  # noqa: E402


class UsageError(Exception):
    """Shown to the user as one line; exit code 2."""


@dataclass(frozen=True)
class RunSummary:
    read: int
    unique: int
    duplicates: int
    dead_letters: int
    errors: int = 0  # of the dead letters, those that are code errors

    @property
    def adds_up(self) -> bool:
        return self.read == self.unique + self.duplicates + self.dead_letters

    def line(self) -> str:
        return (f"read={self.read} unique={self.unique} duplicates={self.duplicates} "
                f"dead_letters={self.dead_letters} errors={self.errors}")


def _all_beam_option_names() -> set[str]:
    parser = argparse.ArgumentParser(add_help=False)
    seen = set()

    def visit(cls):
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.add(sub)
                sub._add_argparse_args(parser)
                visit(sub)
    visit(PipelineOptions)
    return {opt for action in parser._actions for opt in action.option_strings}


def parse_run_arguments(argv: Sequence[str]) -> PipelineOptions:
    """Strict parsing: a misspelt flag is an error, not silently ignored."""
    known = _all_beam_option_names()
    for arg in argv:
        if arg.startswith("--") and arg.split("=", 1)[0] not in known:
            raise UsageError(f"unknown option {arg.split('=', 1)[0]} (see wirestream run --help)")
    options = PipelineOptions(list(argv))
    if not options.view_as(WirestreamOptions).source:
        raise UsageError("--source is required (a file, directory or glob of archive files, "
                         "or kafka://HOST:PORT/TOPIC)")
    return options


def resolve_source(spec: str, options: PipelineOptions, kafka_config) -> Source:
    try:
        if spec.startswith("kafka://"):
            from wirestream.transforms.io.kafka import (CommitWrittenOffsets, KafkaSourceSpec, ReadFromKafka,
                                             ReadKafkaTopics)
            kafka = KafkaSourceSpec.parse(spec, kafka_config,
                                          options.view_as(KafkaOptions).kafka_discovery_interval)
            if kafka.group is None:  # no group, no commits: nothing would ever read them
                return Source(ReadFromKafka(kafka), kafka.bounded)
            return Source(ReadKafkaTopics(kafka), kafka.bounded, commit=CommitWrittenOffsets(kafka))
        progress = options.view_as(LaunchOptions).progress
        show = progress == "on" or (progress == "auto" and sys.stderr.isatty())
        max_file_bytes = options.view_as(WirestreamOptions).max_file_bytes
        return Source(ReadArchiveFiles(list_archive_files(spec), progress=show,
                                       max_file_bytes=max_file_bytes), bounded=True)
    except SourceError as exc:
        raise UsageError(str(exc)) from None


def kafka_client_config(options: PipelineOptions):
    from wirestream.transforms.io.kafka import client_config
    kafka = options.view_as(KafkaOptions)
    try:
        config = client_config(kafka.kafka_config, kafka.kafka_config_file)
    except SourceError as exc:
        raise UsageError(str(exc)) from None
    SECRETS.add(*config.secret_values())  # from the file and the environment too
    return config


def pipeline_settings(options: PipelineOptions, kafka_config,
                      streaming: bool) -> PipelineSettings:
    opts = options.view_as(WirestreamOptions)
    try:
        sink_spec(opts.sink)
        dead_letter = opts.dead_letter or default_dead_letter_spec(opts.sink)
        sink_spec(dead_letter)
    except (SinkError, SourceError) as exc:  # SourceError: a bad kafka:// sink spec
        raise UsageError(str(exc)) from None
    local_workers = options.view_as(LaunchOptions).local_workers
    if local_workers is not None and local_workers < 1:
        raise UsageError("--local-workers must be at least 1")
    if opts.num_shards < 1:
        raise UsageError("--num-shards must be at least 1")
    if not 0 < opts.dedup_threshold <= 1 or opts.dedup_window_days <= 0:
        raise UsageError("--dedup-threshold must be in (0, 1] and --dedup-window-days positive")
    source_timezones = {}
    for item in opts.source_timezone or []:
        source_name, sep, zone = item.partition("=")
        if not sep or not source_name:
            raise UsageError(f"--source-timezone wants SOURCE=ZONE, got {item!r}")
        source_timezones[source_name] = zone
    for zone in [opts.default_timezone, *source_timezones.values()]:
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise UsageError(f"unknown time zone {zone!r} (an IANA name such as "
                             f"Europe/Berlin)") from None
    return PipelineSettings(
        sink=opts.sink, dead_letter=dead_letter,
        parse=ParseSettings(max_payload_bytes=opts.max_payload_bytes,
                            max_document_bytes=opts.max_file_bytes),
        normalise=NormaliseSettings(default_timezone=opts.default_timezone,
                                    source_timezones=source_timezones),
        sink_settings=SinkSettings(
            files=FileSinkSettings(streaming=streaming, num_shards=opts.num_shards, roll=RollPolicy(
                seconds=opts.file_roll_seconds, max_bytes=opts.file_roll_mb * 1024 * 1024,
                max_records=opts.file_roll_records)),
            kafka=kafka_config),
        drop_duplicates=opts.drop_duplicates, tag_data_dir=opts.tag_data_dir,
        parse_only=opts.parse_only,
        dedup=DedupSettings(window_days=opts.dedup_window_days, threshold=opts.dedup_threshold,
                            allowed_lateness_days=opts.dedup_lateness_days, streaming=streaming))


def summary_from_metrics(result) -> RunSummary:
    counters = counter_totals(result)
    return RunSummary(
        read=counters.get("parse_out", 0) + counters.get("parse_dead_letters", 0),
        unique=counters.get("unique", 0), duplicates=counters.get("duplicates", 0),
        dead_letters=counters.get("dead_letters", 0), errors=counters.get(CODE_ERRORS, 0))


def run(argv: Sequence[str]) -> tuple[Optional[RunSummary], PipelineSettings]:
    argv = [*argv, *engines.runner_defaults(list(argv))]  # the fetched Prism binary, Flink jar
    options = parse_run_arguments(argv)
    opts = options.view_as(WirestreamOptions)
    kafka_config = kafka_client_config(options)
    source = resolve_source(opts.source, options, kafka_config)
    bounded = source.bounded
    standard = options.view_as(StandardOptions)
    if not bounded:
        standard.streaming = True
    if not standard.runner:
        standard.runner = DEFAULT_RUNNER if bounded else STREAMING_LOCAL_RUNNER
    if publishes_options(standard.runner, options.view_as(PortableOptions).job_endpoint):
        for warning in inline_secret_warnings(argv, standard.runner):
            print(f"wirestream: warning: {warning}", file=sys.stderr)
    settings = pipeline_settings(options, kafka_config, streaming=not bounded)
    launch = options.view_as(LaunchOptions)
    runs_here = bounded and not launch.describe_only and not standard.no_wait_until_finish and _in_process(options)
    with contextlib.ExitStack() as run_scope:
        if runs_here:
            # This process and its workers share a file system: rendered lines and sketches
            # wait for the clusters in files, not in the elements Beam copies from step to step.
            spill_dir = run_scope.enter_context(spill_directory())
            files_settings = replace(settings.sink_settings.files, spill_dir=spill_dir)
            # This process also runs every bucket partition, one after the other: in one
            # partition the clustering is one step, and each batch's uids travel once.
            settings = replace(settings, sink_settings=replace(settings.sink_settings, files=files_settings),
                               dedup=replace(settings.dedup, band_partitions=1, spill_dir=spill_dir))
        # Forked first: they load what the stages need while the graph is built and started.
        workers = _start_local_workers(options, settings) if runs_here else 0
        result = None
        try:
            result = _build_and_run(options, source, settings)
        finally:
            if workers:  # a bounded run that came back finished: the workers are done with
                stop_local_workers(result is not None)
    return (None if result is None else summary_from_metrics(result)), settings


def _build_and_run(options: PipelineOptions, source: Source, settings: PipelineSettings):
    """The pipeline built and run to its end (a bounded run) or to Ctrl-C (streaming):
    its result; None for --dry-run, or a job submitted without waiting."""
    launch, standard = options.view_as(LaunchOptions), options.view_as(StandardOptions)
    try:
        pipeline = beam.Pipeline(options=options)  # validates the options for the runner
    except ValueError as exc:
        raise UsageError(f"invalid pipeline options: {' '.join(str(exc).split())}") from None
    try:
        build_pipeline(pipeline, source, settings)
    except (SinkError, SourceError) as exc:  # a sink or source that cannot be used
        raise UsageError(str(exc)) from None
    if launch.describe_only:
        describe_without_running(pipeline, options)
        return None
    if standard.no_wait_until_finish:
        # Submit and return (Flink/Dataflow launchers): the job runs on without us.
        result = pipeline.run()
        job_id = getattr(result, "job_id", None)
        print(f"submitted job {job_id() if callable(job_id) else ''}".rstrip())
        return None
    with short_sampler_waits(), state_cache_off():
        if source.bounded:
            result = pipeline.run()
            result.wait_until_finish()
            return result
        from wirestream.pipelines.streaming import run_until_interrupted
        return run_until_interrupted(pipeline)


# Runners that run the pipeline in this process (FnApiRunner; DirectRunner
# falls back to it), where forked workers can serve its DoFns.
IN_PROCESS_RUNNERS = ("FnApiRunner", "DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner")


def _in_process(options: PipelineOptions) -> bool:
    """Whether the runner runs the pipeline in this process (not when Beam is asked for workers of its own)."""
    direct = options.view_as(DirectOptions)
    runner = options.view_as(StandardOptions).runner
    runner_name = runner if isinstance(runner, str) else type(runner).__name__
    return (runner_name in IN_PROCESS_RUNNERS and direct.direct_running_mode == "in_memory"
            and (direct.direct_num_workers or 1) == 1)


def _start_local_workers(options: PipelineOptions, settings: PipelineSettings) -> int:
    """Forks --local-workers worker processes for a bounded run in this process."""
    count = options.view_as(LaunchOptions).local_workers
    return start_local_workers(default_local_workers() if count is None else count,
                               chain_settings(settings))


def describe_without_running(pipeline: beam.Pipeline, options: PipelineOptions) -> None:
    """--dry-run: validate the options for the named runner, print them and the
    graph's transform labels as JSON on stdout; submit nothing."""
    from apache_beam.options.pipeline_options_validator import PipelineOptionsValidator
    from apache_beam.runners.runner import create_runner

    runner_name = options.view_as(StandardOptions).runner
    errors = PipelineOptionsValidator(options, create_runner(runner_name)).validate()
    if errors:
        raise UsageError(f"invalid options for {runner_name}: {'; '.join(errors)}")
    labels: list[str] = []

    class Labels(beam.pipeline.PipelineVisitor):
        # Two levels (stage and its steps) say what runs; deeper ones are Beam's internals.
        def enter_composite_transform(self, node):
            self.visit_transform(node)

        def visit_transform(self, node):
            if node.full_label and node.full_label.count("/") <= 1:
                labels.append(node.full_label)

    pipeline.visit(Labels())
    resolved = options.get_all_options(drop_default=True)
    resolved["runner"] = runner_name
    print(json.dumps({"runner": runner_name, "options": resolved, "graph": labels},
                     indent=2, default=str))


def _run_command(argv: Sequence[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        parser = argparse.ArgumentParser(prog="wirestream run", description=(
            "Run the pipeline. Any Beam pipeline option (--runner, --streaming, "
            "--direct_num_workers, ...) is also accepted."))
        for options_class in (WirestreamOptions, LaunchOptions, KafkaOptions):
            options_class._add_argparse_args(parser)
        parser.print_help()
        return 0
    summary, settings = run(argv)
    if summary is None:  # --dry-run, or submitted without waiting
        return 0
    print(f"event records: {redacted_url(settings.sink)}\n"
          f"dead letters:  {redacted_url(settings.dead_letter)}")
    print(summary.line(), file=sys.stderr)
    if not summary.adds_up:
        print("error: counts do not add up (read != unique + duplicates + dead_letters)",
              file=sys.stderr)
        return 1
    tolerance = PipelineOptions(list(argv)).view_as(LaunchOptions).errors_tolerance
    if summary.errors and tolerance == "none":
        print(f"error: {summary.errors} code error(s): an unexpected exception in wirestream, "
              "not bad input; each is a dead letter with error_kind \"code\" and its "
              "traceback (--errors-tolerance all accepts them)", file=sys.stderr)
        return 1
    return 0


def _broker_command(argv: Sequence[str]) -> int:
    from wirestream.pipelines.kafka_commands import broker_command
    return broker_command(argv)


def _produce_command(argv: Sequence[str]) -> int:
    from wirestream.pipelines.kafka_commands import produce_command
    return produce_command(argv)


COMMANDS = {"run": _run_command, "broker": _broker_command, "produce": _produce_command}


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        known = ", ".join(sorted(COMMANDS))
        if argv and argv[0] not in ("-h", "--help"):
            print(f"wirestream: unknown command {argv[0]!r} (commands: {known})", file=sys.stderr)
            return 2
        print(f"usage: wirestream {{{known}}} ...  (wirestream COMMAND --help)", file=sys.stderr)
        return 0 if argv else 2
    SECRETS.add(*(secret for _, _, secret in inline_secrets(argv)))
    with masked_output(SECRETS):
        return _masked_main(argv)


def _masked_main(argv: list[str]) -> int:
    try:
        return COMMANDS[argv[0]](argv[1:])
    except UsageError as exc:
        print(f"wirestream: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wirestream: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a failed pipeline: one line, the detail in debug logs
        logging.getLogger("wirestream").debug("pipeline failed", exc_info=True)
        what = "pipeline" if argv[0] == "run" else argv[0]
        print(f"wirestream: {what} failed: {type(exc).__name__}: "
              f"{str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
        return 1


def quiet_closed_state_stream(args: threading.ExceptHookArgs, default=threading.__excepthook__) -> None:
    """A thread exception hook: Beam's SDK harness reads state responses on a thread of
    its own ("read_state"), which raises when the runner closes that stream. Prism
    closes it as a job ends, before the harness is done with it, and Python printed the
    thread's traceback after a run that had succeeded. Nothing is lost by not printing
    it: a state request still waiting raises the same error, and fails its job.
    Any other thread's exception is printed as before."""
    import grpc
    error = args.exc_value
    if (args.thread is not None and args.thread.name == "read_state" and isinstance(error, grpc.RpcError)
            and error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)):
        logging.getLogger("wirestream").debug("the runner closed the state stream: %s", error.details())
        return
    default(args)


def command() -> None:
    """The console script: ``main``, then the exit functions, then exit without
    Python's teardown. A run leaves its gazetteers, language profiles and the
    runner's objects in memory, and freeing them one by one after the summary
    took longer than some runs. What the command wrote is closed by then (sinks
    close in their teardown, the workers are joined); the exit functions stop
    what the runner started (job servers) and flush the log handlers."""
    threading.excepthook = quiet_closed_state_stream
    code = main()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    command()
