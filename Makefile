# Every target installs what it needs into .venv first, so each works on a fresh clone.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin

.PHONY: install run test lint unit check-pg clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## The embedded demo: SQLite under ./leaver-data, built-in IGA simulators with demo users.
run: install
	$(BIN)/leaver serve

## Lint, type-check and the whole test suite (SQLite; set LEAVER_TEST_DATABASE_URL for PostgreSQL).
test: install lint
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check app
	$(BIN)/mypy app

clean:
	rm -rf $(VENV) leaver-data .pytest_cache .mypy_cache .ruff_cache
