# Every target installs what it needs into .venv first, so each works on a fresh clone.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin

.PHONY: install run test property lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## The embedded demo: SQLite under ./leaver-data, built-in IGA simulators with demo users.
run: install
	$(BIN)/leaver serve

## Lint, type-check and the test suite. On SQLite (the default) the tests marked `postgres` (kill
## matrix, scale-out) are left out; set LEAVER_TEST_DATABASE_URL=postgresql+asyncpg://... to run
## everything on PostgreSQL.
test: install lint
	$(BIN)/pytest -q $(if $(LEAVER_TEST_DATABASE_URL),,-m "not postgres")

## More Hypothesis examples than the default run: LEAVER_PROPERTY_EXAMPLES=200 make property
property: install
	$(BIN)/pytest -q tests/property

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check app
	$(BIN)/mypy app

clean:
	rm -rf $(VENV) leaver-data .pytest_cache .mypy_cache .ruff_cache
