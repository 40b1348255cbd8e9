"""Client settings (``--kafka-config KEY=VALUE``, ``--kafka-config-file``) are
kafka-python settings; Java-style dotted keys (``security.protocol``),
librdkafka's names and ``sasl.jaas.config`` (PLAIN and SCRAM login modules)
are accepted too, and ``${env:NAME}`` takes a value from the environment.
Values of secret settings never appear in logs, reprs or errors.
"""

from __future__ import annotations

import difflib
import os
import re
from typing import Iterable, Optional

from wirestream.transforms.io.archive import SourceError

# A client setting whose name contains one of these is a secret.
_SECRET_WORDS = ("password", "secret", "token", "jaas", "credential", "sasl_oauth")


class KafkaSpecError(SourceError):
    """A kafka:// spec or client setting that cannot be used (one line for the user)."""


class ClientConfig(dict):
    """kafka-python settings; secret values are masked in repr and str."""

    def __repr__(self) -> str:
        return repr({k: ("***" if is_secret(k) else v) for k, v in self.items()})

    __str__ = __repr__

    def secret_values(self) -> set[str]:
        """The values to mask wherever anything is printed."""
        return {str(v) for k, v in self.items() if is_secret(k) and v not in (None, "")}

    def for_client(self, defaults: dict) -> dict:
        """The settings a client class (its DEFAULT_CONFIG) understands."""
        return {k: v for k, v in self.items() if k in defaults}


def is_secret(key: str) -> bool:
    return any(word in key.lower() for word in _SECRET_WORDS)


def _known_settings() -> dict:
    from kafka import KafkaConsumer, KafkaProducer
    return {**KafkaProducer.DEFAULT_CONFIG, **KafkaConsumer.DEFAULT_CONFIG}


def _typed(key: str, text: str, default):
    """A properties-file string as the type kafka-python expects for KEY."""
    text = text.strip()
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        shown = "***" if is_secret(key) else repr(text)
        raise KafkaSpecError(f"Kafka setting {key}: expected {type(default).__name__}, got {shown}"
                             ) from None
    return text


# Java (and librdkafka) names whose kafka-python name is not simply the dotted
# name with underscores.
_ALIASES = {
    "sasl_mechanisms": "sasl_mechanism",  # librdkafka
    "sasl_username": "sasl_plain_username",  # librdkafka; kafka-python uses it for SCRAM too
    "sasl_password": "sasl_plain_password",
    "ssl_ca_location": "ssl_cafile",
    "ssl_certificate_location": "ssl_certfile",
    "ssl_key_location": "ssl_keyfile",
    "ssl_key_password": "ssl_password",  # Java's name for the private key's password
}
# Java-only settings with no kafka-python meaning: what to use instead.
_JAVA_ONLY = {
    "ssl_truststore_location": "ssl.ca.location (a PEM file; kafka-python reads no JKS stores)",
    "ssl_keystore_location": "ssl.certificate.location and ssl.key.location (PEM files)",
    "ssl_truststore_password": "ssl.ca.location (a PEM file needs no password)",
    "ssl_keystore_password": "ssl.key.password",
}
_LOGIN_MODULES = {
    "org.apache.kafka.common.security.plain.PlainLoginModule": ("PLAIN",),
    "org.apache.kafka.common.security.scram.ScramLoginModule": ("SCRAM-SHA-256", "SCRAM-SHA-512"),
}
_JAAS = re.compile(r"^\s*(?P<module>[\w.$]+)\s+(?:required|requisite|sufficient|optional)\b"
                   r"(?P<options>.*?)\s*;?\s*$", re.S)
_JAAS_OPTION = re.compile(r"""(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|([^\s;"']+))""")
# Kafka's EnvVarConfigProvider syntax: the file names the variable, the value stays out of it.
_ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_OTHER_REFERENCE = re.compile(r"\$\{(?!env:)[A-Za-z]\w*:[^}]*\}")


def _resolved(key: str, value: str, where: str, environ) -> str:
    """A value with its ${env:NAME} references replaced by the variables' values."""
    if _OTHER_REFERENCE.search(value):
        raise KafkaSpecError(f"{where}: {key}: only ${{env:NAME}} references are supported")

    def variable(match):
        name = match.group(1)
        if name not in environ:
            raise KafkaSpecError(f"{where}: {key} names the environment variable {name}, "
                                 "which is not set")
        return environ[name]
    return _ENV_REFERENCE.sub(variable, value)


def _jaas_settings(text: str, mechanism: Optional[str], where: str) -> dict:
    """sasl.jaas.config (a Java login module line) -> kafka-python's SASL settings."""
    match = _JAAS.match(text)
    if not match:
        raise KafkaSpecError(f"{where}: sasl.jaas.config is not a login module line "
                             "(MODULE required username=\"...\" password=\"...\";)")
    module = match.group("module")
    if module not in _LOGIN_MODULES:
        raise KafkaSpecError(f"{where}: sasl.jaas.config login module {module} is not supported "
                             f"(supported: {', '.join(sorted(_LOGIN_MODULES))})")
    options = {m.group(1): next(g for g in m.groups()[1:] if g is not None).replace('\\"', '"')
               for m in _JAAS_OPTION.finditer(match.group("options"))}
    missing = [name for name in ("username", "password") if not options.get(name)]
    if missing:
        raise KafkaSpecError(f"{where}: sasl.jaas.config {module.rsplit('.', 1)[-1]} needs "
                             f"{' and '.join(missing)}")
    allowed = _LOGIN_MODULES[module]
    if mechanism is None and len(allowed) == 1:
        mechanism = allowed[0]
    if mechanism not in allowed:
        raise KafkaSpecError(f"{where}: sasl.jaas.config {module.rsplit('.', 1)[-1]} needs "
                             f"sasl.mechanism set to {' or '.join(allowed)}"
                             + (f", not {mechanism}" if mechanism else ""))
    return {"sasl_mechanism": mechanism, "sasl_plain_username": options["username"],
            "sasl_plain_password": options["password"]}


def _unknown(key: str, where: str, known) -> KafkaSpecError:
    if key in ("bootstrap_servers", "group_id"):
        return KafkaSpecError(f"{where}: Kafka client setting {key!r} belongs in the kafka:// spec")
    if key in _JAVA_ONLY:
        return KafkaSpecError(f"{where}: Kafka setting {key!r} is Java-only; use {_JAVA_ONLY[key]}")
    close = difflib.get_close_matches(key, [*known, *_ALIASES, "sasl_jaas_config"], n=1, cutoff=0.75)
    return KafkaSpecError(f"{where}: unknown Kafka client setting {key!r}"
                          + (f" (did you mean {_ALIASES.get(close[0], close[0])}?)" if close else ""))


def client_config(pairs: Optional[Iterable[str]] = None,
                  properties_file: Optional[str] = None, environ=None) -> ClientConfig:
    """Settings from a Java properties file, then KEY=VALUE pairs (which win).
    Names may be kafka-python's, Java's (dotted) or librdkafka's; sasl.jaas.config
    is parsed into kafka-python's SASL settings; ``${env:NAME}`` in a value is the
    environment variable NAME, so a file can name a secret without holding it."""
    import javaproperties
    environ = os.environ if environ is None else environ
    entries: list[tuple[str, str, str]] = []
    if properties_file:
        try:
            with open(properties_file, encoding="utf-8") as handle:
                properties = javaproperties.load(handle)
        except OSError as exc:
            raise KafkaSpecError(f"cannot read Kafka config file {properties_file}: "
                                 f"{exc.strerror}") from None
        entries += [(properties_file, k, v) for k, v in properties.items()]
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise KafkaSpecError("--kafka-config: expected KEY=VALUE, got a value without '='")
        entries.append(("--kafka-config", key, value))
    config, jaas = ClientConfig(), None
    # kafka-python is imported only when there is something to check: a run that
    # neither reads nor writes Kafka starts without it.
    known = _known_settings() if entries else {}
    for where, raw_key, value in entries:
        key = raw_key.strip().replace(".", "_").replace("-", "_")
        if key.startswith("config_providers"):
            continue  # Java's provider set-up; ${env:NAME} is resolved here
        value = _resolved(raw_key.strip(), value.strip(), where, environ)
        key = _ALIASES.get(key, key)
        if key == "sasl_jaas_config":
            jaas = (value, where)
            continue
        if key not in known or key in ("bootstrap_servers", "group_id"):
            raise _unknown(key, where, known)
        config[key] = _typed(key, value, known[key])
    if jaas is not None:
        config.update(_jaas_settings(jaas[0], config.get("sasl_mechanism"), jaas[1]))
    return config
