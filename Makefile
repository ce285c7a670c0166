# cdc-bridge developer commands. Everything installs into .venv; Kafka jars are cached in stack/.kafka.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test bench lint format docs kafka-jars clean

demo: $(VENV)/.demo-installed  ## run the bridge on an in-process DynamoDB with the Phones table
	$(BIN)/cdc-bridge demo

test: $(VENV)/.test-installed kafka-jars  ## lint, then unit, integration and fault tests on real services
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

bench: $(VENV)/.bench-installed kafka-jars  ## run every benchmark of bench/README.md; table on stdout, bench/results.json
	$(BIN)/python -m bench

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.test-installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

docs: $(VENV)/.demo-installed  ## regenerate docs/config.md and config/example.yaml from the config dataclasses
	$(BIN)/python -m bridge.commands.config_docs

kafka-jars: stack/.kafka/lib/.fetched

stack/.kafka/lib/.fetched: stack/pom.xml
	mvn -q -B -f stack/pom.xml package
	touch $@

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

COMPILED = setup.py $(wildcard bridge/codec/csrc/*.[ch])  # the C module, built by pip install

$(VENV)/.demo-installed: pyproject.toml $(COMPILED) | $(VENV)/bin/python
	$(BIN)/pip install -q -e '.[demo]'
	touch $@

$(VENV)/.test-installed: pyproject.toml $(COMPILED) tests/plugin_sink/pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q -e tests/plugin_sink  # a third-party sink for the sink conformance tests
	touch $@

$(VENV)/.bench-installed: pyproject.toml $(COMPILED) | $(VENV)/bin/python
	$(BIN)/pip install -q -e '.[bench]'
	touch $@

clean:
	rm -rf $(VENV) stack/.kafka .pytest_cache .ruff_cache .hypothesis .cdc-bridge build bridge/codec/*.so
