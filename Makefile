# The two set-up commands of the README. Each builds the venv when it is missing
# (scripts/venv.sh: outside the clone, keyed by a hash of requirements.txt).
# `make test` runs every test (the ones that train models too) and the lint;
# `make test-fast` leaves out the tests marked slow, for the edit-test loop (under a minute).
.PHONY: demo test test-fast lint venv
ARGS ?=
# Modules whose docstring examples are run as tests (doctest).
DOCTESTS = xmd_cli/metrics xmd_cli/models/distill.py xmd_cli/shards xmd_cli/registry.py xmd_cli/io.py

demo:
	@venv=$$(scripts/venv.sh) && "$$venv/bin/xmd" demo $(ARGS)

test: lint
	@venv=$$(scripts/venv.sh) && cd $(CURDIR) && "$$venv/bin/python" -m pytest -q --doctest-modules tests $(DOCTESTS) $(ARGS)

test-fast:
	@venv=$$(scripts/venv.sh) && cd $(CURDIR) && "$$venv/bin/python" -m pytest -q -m "not slow" --doctest-modules tests $(DOCTESTS) $(ARGS)

lint:
	@venv=$$(scripts/venv.sh) && cd $(CURDIR) && "$$venv/bin/python" -m ruff check --no-cache xmd_cli tests bench scripts

venv:
	@scripts/venv.sh
