# Two commands on a fresh machine with only Python 3.11: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test bench lint format check-ledger clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# Embedded mode without DATABASE_URL/REDIS_URL; separate web, worker and beat
# processes against PostgreSQL and Redis when they are set.
run: install
	$(BIN)/python manage.py run_stack

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# `make bench BENCH="ranking catalog"` runs only those.
bench: install
	$(BIN)/python -m benchmarks $(BENCH)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

check-ledger: install
	$(BIN)/python manage.py check_ledger

clean:
	rm -rf $(VENV) var
