# The two commands of the quick start: `make demo` and `make test`.
SHELL := /bin/bash
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv
MANIFEST := dbt_project/target/manifest.json
DBT_SOURCES := dbt_project/dbt_project.yml dbt_project/profiles.yml $(shell find dbt_project/models dbt_project/macros dbt_project/tests -type f 2>/dev/null)
export UV_PYTHON_DOWNLOADS := never

.PHONY: install demo test bench lint format clean

# uv itself, when the machine has none: pinned, in a throwaway virtualenv.
.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --group dev
	touch $@

# The dbt manifest is built here, once, not parsed at every import of the code location.
$(MANIFEST): $(VENV)/.synced $(DBT_SOURCES)
	cd dbt_project && ../$(VENV)/bin/dbt parse --quiet --project-dir . --profiles-dir .
	touch $@

install: $(VENV)/.synced $(MANIFEST)

demo: install
	$(VENV)/bin/gtm demo

# Two test processes: most tests wait on servers, subprocesses and the daemon, not the CPU;
# idle workers take over waiting tests (worksteal), so the long ones do not queue up.
test: install
	$(VENV)/bin/python -m pytest -n 2 --dist worksteal

# Every benchmark at its goal size, one after another (8-10 minutes on 2 CPUs: run it on a
# machine doing nothing else). Writes bench/RESULTS.md and the README's benchmark table.
# BENCH_ARGS="--quick" checks the suite in minutes at small sizes, written to bench/logs/.
bench: install
	$(VENV)/bin/python bench/suite.py $(BENCH_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .tools dbt_project/target dbt_project/logs
