# Two set-up commands: `make demo` and `make test`. Both create .venv on first use.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# 2 CPU cores: keep BLAS/OpenMP from oversubscribing when pytest workers or threads run side by side.
export OMP_NUM_THREADS ?= 2
# ...and make idle OpenMP threads sleep instead of spin: two workers' spinning threads on 2 cores starve each other
# (tests/test_train_paper.py next to tests/test_reliability_train.py: 160 s spinning, 89 s passive)
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: demo test venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'  # dev = every extra but trt/gpu + the test tools
	# HOTA: TrackEval's metrics, without its requirements (they pull opencv-python over the headless build)
	$(BIN)/python -m pip install -q --no-deps 'trackeval==1.3.0'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/hicmd demo

# two pytest workers (pytest-xdist), each test file on one worker so its fixtures are built once; the trained-model
# fixture shared across files is built by the first worker to need it (tests/testkit/cache.py), and the files are
# taken in the order tests/conftest.py sets (no reorder), so that the other worker is not left waiting for that build
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=15 tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
