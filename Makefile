# Two commands a new user needs: `make demo` and `make test`.
# Each creates the virtual environment and installs the project when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Real test data (Reuters-21578, IPTC specimens, ...) lives beside the checkout.
export WIRESTREAM_DATA ?= $(abspath ../shared/data)

.PHONY: demo test bench install engines clean

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	# An editable install leaves the sources uncompiled, and where bytecode is not written
	# (PYTHONDONTWRITEBYTECODE, a read-only checkout) every command compiled them again:
	# a third of a second of each run's start.
	$(BIN)/python -m compileall -q pipelines transforms schemas benchmarks > /dev/null
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/wirestream run --source samples/archive --sink jsonl:./out

test: $(VENV)/.installed
	$(BIN)/python -m pytest

# Apache Kafka, Beam's Flink job server (assembled from its Maven parts) and IO expansion service (Maven, pinned) and
# Prism (go install), into one cache directory outside the repository. Idempotent.
engines:
	$(PYTHON) pipelines/engines.py fetch

clean:
	rm -rf out .pytest_cache
