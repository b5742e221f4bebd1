# Two commands are the contract (see README): `make demo` and `make test`.
# Each creates .venv and installs what it needs by itself.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo demo-data test lint bench soak install clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "shadow needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

# The data migration (docs/data.md): legacy SQLite vs a throwaway PostgreSQL.
demo-data: $(STAMP)
	@bash scripts/ensure-services
	$(PY) examples/data/demo.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: $(STAMP) lint
	@bash scripts/ensure-browser
	@bash scripts/ensure-services
	$(PY) -m pytest -m serial
	$(PY) -m pytest -m "not serial" -n 2 --dist worksteal

bench: $(STAMP)
	$(PY) benchmarks/run.py
	$(PY) benchmarks/replay_bench.py
	$(PY) benchmarks/replay_memory.py
	$(PY) benchmarks/report_bench.py
	$(PY) benchmarks/cutover_bench.py
	$(PY) benchmarks/monitoring_bench.py
	$(PY) benchmarks/latency_fairness.py
	$(PY) benchmarks/realtime_bench.py
	$(PY) benchmarks/pytest_bench.py
	$(PY) benchmarks/data_bench.py
	$(PY) benchmarks/scale_bench.py

soak: $(STAMP)
	$(PY) benchmarks/soak.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
