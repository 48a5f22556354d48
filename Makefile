# dermtool: `make demo` runs the main job end to end, `make test` runs the tests. Both install first.
# The newest of Python 3.13, 3.12 and 3.11 that runs here (a pyenv shim for a version that is not selected does
# not run, so it counts as absent); `make install PYTHON=python3.11` picks one. An existing $(VENV) is kept.
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell for p in python3.13 python3.12 python3.11; do $$p -c '' >/dev/null 2>&1 && { echo $$p; break; }; done)
endif
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= ../shared/data/ham10000
# Pytest workers: the suite is CPU-bound (TensorFlow); keep one process per core at most.
PYTEST_ARGS ?=

.PHONY: install constraints test demo bench-input mobile-demo clean help

help:
	@echo "make install   create $(VENV) with $(or $(PYTHON),Python 3.11-3.13) and install dermtool (editable) with the versions in constraints.txt"
	@echo "make constraints  rewrite constraints.txt from $(VENV) (after changing a pin and passing make test)"
	@echo "make demo      train -> export (float, int8) -> bench on $(DATA) with configs/demo_cpu.toml"
	@echo "make test      run the test suite (CPU only, real HAM10000 subsets)"
	@echo "make bench-input  measure the input pipeline's images/s"
	@echo "make mobile-demo MODEL=model.tflite [MOBILE_PORT=$(MOBILE_PORT)]  build the offline PWA (mobile_demo/dist) and serve it on 127.0.0.1:MOBILE_PORT"

install: $(STAMP)

# Two pip steps: dermtool (editable) with its declared dependencies and extras, every version pinned by
# constraints.txt; then two test-only packages whose declared requirements conflict with that set although
# they run fine with it, without their dependencies (see requirements-nodeps.txt; dermtool itself needs neither).
$(STAMP): constraints.txt requirements-nodeps.txt setup.cfg pyproject.toml
	@test -x $(BIN)/python || test -n "$(PYTHON)" || { echo "make install needs Python 3.11, 3.12 or 3.13 (python3.13, python3.12 or python3.11 on PATH, or PYTHON=/path/to/python)"; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[serve,test]'
	$(BIN)/pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

# Rewrite constraints.txt from the working .venv (after changing a pin there and passing `make test`).
constraints: install
	{ grep '^#' constraints.txt; $(BIN)/pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

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
