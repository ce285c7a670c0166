# cdc-bridge developer commands. Everything installs into .venv; Kafka jars are cached in stack/.kafka, AWS's
# Lambda runtime interface emulator (built from its Go module) in stack/.lambda.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test bench lint format docs kafka-jars lambda-rie lambda-package clean

demo: $(VENV)/.demo-installed  ## run the bridge on an in-process DynamoDB with the Phones table
	$(BIN)/cdc-bridge demo

test: $(VENV)/.test-installed kafka-jars lambda-rie lambda-package  ## lint, then unit, integration and fault tests on real services
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

# The emulator that runs bridge.aws_lambda.handler in the tests (tests/lambda_runtime.py); the Go module proxy
# serves this version. Built once, then cached (remove stack/.lambda to build again).
RIE_MODULE = github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie
RIE_VERSION = v0.0.0-20261030222936-bef5c4ba774d

lambda-rie: stack/.lambda/aws-lambda-rie

stack/.lambda/aws-lambda-rie:
	mkdir -p stack/.lambda
	GOBIN=$(CURDIR)/stack/.lambda CGO_ENABLED=0 go install $(RIE_MODULE)@$(RIE_VERSION)

# The deployment zips of deploy/template.yaml, one per Lambda architecture: the bridge and its dependencies as
# manylinux wheels for CPython 3.11. The C module (bridge/codec/_speedups) is compiled for this machine only:
# it is in the x86_64 zip when this is an x86_64 Linux with CPython 3.11, never in the arm64 one (the pure
# Python transcoder runs there). See README "Running on AWS Lambda".
LAMBDA_PY = 3.11
LAMBDA_OUT = build/lambda

lambda-package: $(VENV)/.demo-installed  ## build/lambda/cdc-bridge-{x86_64,arm64}.zip for deploy/template.yaml
	rm -rf $(LAMBDA_OUT) && mkdir -p $(LAMBDA_OUT)
	$(BIN)/python -c "import tomllib; print('\\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
	  > $(LAMBDA_OUT)/requirements.txt
	$(BIN)/python -m pip wheel -q --no-deps -w $(LAMBDA_OUT)/wheel .
	for arch in x86_64 arm64; do \
	  platform=manylinux2014_$$( [ $$arch = arm64 ] && echo aarch64 || echo x86_64 ); \
	  $(BIN)/python -m pip install -q --target $(LAMBDA_OUT)/$$arch --platform $$platform --implementation cp \
	    --python-version $(LAMBDA_PY) --only-binary=:all: -r $(LAMBDA_OUT)/requirements.txt || exit 1; \
	  $(BIN)/python -m pip install -q --target $(LAMBDA_OUT)/$$arch --no-deps $(LAMBDA_OUT)/wheel/*.whl || exit 1; \
	  [ $$arch = x86_64 ] || rm -f $(LAMBDA_OUT)/$$arch/bridge/codec/_speedups*.so; \
	  (cd $(LAMBDA_OUT)/$$arch && $(CURDIR)/$(BIN)/python -m zipfile -c ../cdc-bridge-$$arch.zip .) || exit 1; \
	done
	@ls -l $(LAMBDA_OUT)/*.zip

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
	rm -rf $(VENV) stack/.kafka stack/.lambda .pytest_cache .ruff_cache .hypothesis .cdc-bridge build bridge/codec/*.so
