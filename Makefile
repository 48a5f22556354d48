# dermtool: `make demo` runs the main job end to end, `make test` runs the tests. Both install first.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= ../shared/data/ham10000
# Pytest workers: the suite is CPU-bound (TensorFlow); keep one process per core at most.
PYTEST_ARGS ?=

.PHONY: install test demo bench-input mobile-demo clean help

help:
	@echo "make install   create $(VENV) and install pinned dependencies + dermtool (editable)"
	@echo "make demo      train -> export (float, int8) -> bench on $(DATA) with configs/demo_cpu.toml"
	@echo "make test      run the test suite (CPU only, real HAM10000 subsets)"
	@echo "make bench-input  measure the input pipeline's images/s"
	@echo "make mobile-demo MODEL=model.tflite  build the offline PWA (mobile_demo/dist) and serve it on 127.0.0.1:$(MOBILE_PORT)"

install: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: install
	$(BIN)/python benchmarks/run_ham10000.py --config configs/demo_cpu.toml --data $(DATA) --out runs/demo --quick

bench-input: install
	$(BIN)/python benchmarks/bench_input.py --data $(DATA)

# The offline PWA: the .tflite runs in the phone's browser (MediaPipe Tasks Vision, WebAssembly served by the app).
MODEL ?=
MOBILE_PORT ?= 8080
mobile-demo: install
	@test -n "$(MODEL)" || { echo "usage: make mobile-demo MODEL=path/to/model.tflite (from dermtool export)"; exit 2; }
	cd mobile_demo && npm ci --no-audit --no-fund
	$(BIN)/python mobile_demo/build.py --model "$(MODEL)" --out mobile_demo/dist
	@echo "A phone needs HTTPS or localhost for offline use: e.g. 'adb reverse tcp:$(MOBILE_PORT) tcp:$(MOBILE_PORT)' then open that address on it."
	$(BIN)/python mobile_demo/serve.py mobile_demo/dist --port $(MOBILE_PORT)

clean:
	rm -rf $(VENV) build *.egg-info toolchain/*.egg-info .pytest_cache
