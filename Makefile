# Two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
EXTRAS := dev,pipeline,aws,edge,serve

.PHONY: test demo lint lock benchmarks clean-demo

# torch first, from its pinned CPU build; everything after resolves under the lock file,
# so pip never pulls a CUDA build or backtracks.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/parkcast demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/bandit -q -c pyproject.toml -r .

benchmarks: $(STAMP)
	$(BIN)/python benchmarks/ingest.py

# Re-resolve the lock from pyproject (needs the registries).
lock:
	rm -rf /tmp/parkcast-lock && $(PYTHON) -m venv /tmp/parkcast-lock
	/tmp/parkcast-lock/bin/pip install --quiet torch==2.13.0
	/tmp/parkcast-lock/bin/pip install --quiet -c constraints.txt ".[$(EXTRAS)]"
	{ echo "# Lock for every extra (pip constraints). Regenerate: make lock"; \
	  /tmp/parkcast-lock/bin/pip freeze | grep -v '^parkcast'; } > constraints.txt
