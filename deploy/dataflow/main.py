"""Dataflow Flex Template entry point (FLEX_TEMPLATE_PYTHON_PY_FILE).

The template launcher runs this file with every launch parameter as
``--name=value`` plus Dataflow's own options (``--project``, ``--region``,
``--temp_location``...). It hands them to ``wirestream run``, so a template
launch and a command-line run share one code path and one option parser.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from apache_beam.options.pipeline_options import StandardOptions

from wirestream.pipelines.cli import main
from wirestream.pipelines.options import KafkaOptions, WirestreamOptions


def _option_actions() -> list[argparse.Action]:
    parser = argparse.ArgumentParser(add_help=False)
    for options in (WirestreamOptions, KafkaOptions, StandardOptions):
        options._add_argparse_args(parser)
    return parser._actions


def switch_names() -> set[str]:
    """Options that take no value (``--drop_duplicates``, ``--streaming``...)."""
    return {name for action in _option_actions() if action.nargs == 0 and action.const is True
            for name in action.option_strings}


def repeatable_names() -> set[str]:
    """Options given once per value on the command line (``--kafka_config``...)."""
    return {name for action in _option_actions() if isinstance(action, argparse._AppendAction)
            for name in action.option_strings}


def run_arguments(template_args: Sequence[str]) -> list[str]:
    """Launcher arguments -> ``wirestream run`` arguments.

    A template parameter is given once, as ``--name=value``. A switch does not
    take a value: true becomes the bare switch, false drops it. A repeatable
    option holds several values separated by ``;``. A launch only submits the
    job: the launcher must not wait for it to finish.
    """
    switches, repeatable = switch_names(), repeatable_names()
    arguments = []
    for arg in template_args:
        name, has_value, value = arg.partition("=")
        if has_value and name in switches and value.lower() in ("true", "false"):
            if value.lower() == "true":
                arguments.append(name)
        elif has_value and name in repeatable:
            arguments += [f"{name}={part.strip()}" for part in value.split(";") if part.strip()]
        else:
            arguments.append(arg)
    return ["run", *arguments, "--no_wait_until_finish"]


if __name__ == "__main__":
    sys.exit(main(run_arguments(sys.argv[1:])))
