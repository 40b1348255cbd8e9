"""Secrets never appear in anything the command prints or logs.

The command collects every secret it is given (passwords in sink URLs, secret
Kafka settings, inline or from a file or the environment) and writes stdout,
stderr and the log through a mask that replaces each with ``***``. Inline
secrets are also reported when the run goes to a runner that publishes its
pipeline options (Flink's and Dataflow's UIs and logs show them).
"""

from __future__ import annotations

import json
import logging
import sys
from contextlib import contextmanager
from typing import Iterable, Iterator, Sequence
from urllib.parse import quote, quote_plus

from wirestream.transforms.io.kafka import is_secret
from wirestream.transforms.io.sinks import url_secrets

MASK = "***"
_URL_OPTIONS = ("--sink", "--dead-letter", "--dead_letter", "--to")
_KAFKA_CONFIG_OPTIONS = ("--kafka-config", "--kafka_config")


def _option_values(argv: Sequence[str]) -> Iterator[tuple[str, str]]:
    """(option, value) for each option given as --opt=value or --opt value."""
    for index, arg in enumerate(argv):
        if not arg.startswith("--"):
            continue
        option, sep, value = arg.partition("=")
        if sep:
            yield option, value
        elif index + 1 < len(argv) and not argv[index + 1].startswith("--"):
            yield option, argv[index + 1]


def _jaas_passwords(value: str) -> list[str]:
    from wirestream.transforms.io.kafka.settings import _JAAS_OPTION
    return [next(g for g in m.groups()[1:] if g is not None) for m in _JAAS_OPTION.finditer(value)
            if is_secret(m.group(1)) or m.group(1).lower() in ("password", "clientsecret")]


def inline_secrets(argv: Sequence[str]) -> list[tuple[str, str, str]]:
    """(option, setting or "", secret value) for every secret on the command line."""
    found = []
    for option, value in _option_values(argv):
        if option in _KAFKA_CONFIG_OPTIONS:
            key, sep, setting = value.partition("=")
            name = key.strip().replace(".", "_").replace("-", "_")
            if sep and is_secret(name) and setting:
                found.append((option, name, setting))
                found += [(option, name, p) for p in _jaas_passwords(setting)]
        for password in url_secrets(value):
            found.append((option, "", password))
    return found


class SecretMask:
    """Replaces every known secret, in the forms it may be printed in."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._forms: list[str] = []
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        forms = set(self._forms)
        for secret in secrets:
            if secret:
                forms.update({secret, quote(secret, safe=""), quote_plus(secret),
                              json.dumps(secret)[1:-1]})
        self._forms = sorted(forms, key=len, reverse=True)  # longest first

    def __call__(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text


# What the commands print goes through this mask; each adds the secrets it learns.
SECRETS = SecretMask()


class _MaskedStream:
    def __init__(self, stream, mask: SecretMask):
        self._stream, self._mask = stream, mask

    def write(self, text: str) -> int:
        self._stream.write(self._mask(text))
        return len(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextmanager
def masked_output(mask: SecretMask):
    """stdout, stderr and the log handlers write through the mask."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _MaskedStream(sys.stdout, mask), _MaskedStream(sys.stderr, mask)
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)
                and not isinstance(h, logging.FileHandler)]
    streams = [h.stream for h in handlers]
    for handler in handlers:
        handler.setStream(_MaskedStream(handler.stream, mask))
    try:
        yield mask
    finally:
        for handler, stream in zip(handlers, streams):
            handler.setStream(stream)
        sys.stdout, sys.stderr = saved


LOCAL_RUNNERS = ("FnApiRunner", "DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner",
                 "PrismRunner", "InteractiveRunner")


def publishes_options(runner: str, job_endpoint: str | None) -> bool:
    """Does the runner show pipeline options to others (its UI, its logs)?"""
    name = runner.rsplit(".", 1)[-1]
    if name == "PortableRunner":
        return job_endpoint != "embed"
    return name not in LOCAL_RUNNERS


def inline_secret_warnings(argv: Sequence[str], runner: str) -> list[str]:
    warnings, seen = [], set()
    for option, setting, _ in inline_secrets(argv):
        if (option, setting) in seen:
            continue
        seen.add((option, setting))
        published = (f"{runner} shows pipeline options in its UI and logs, where wirestream "
                     "cannot mask it")
        if setting:
            warnings.append(f"--kafka-config {setting} is a secret given inline, and {published}: "
                            "put it in --kafka-config-file, or name an environment variable "
                            "there (${env:NAME})")
        else:
            warnings.append(f"{option} holds a password inline, and {published}: give it through "
                            "PGPASSWORD, a .pgpass file or passfile=PATH instead")
    return warnings
