# The two set-up commands of the README. Each builds the venv when it is missing
# (scripts/venv.sh: outside the clone, keyed by a hash of requirements.txt).
# `make test` runs every test (the ones that train models too) and the lint;
# `make test-fast` leaves out the tests marked slow, for the edit-test loop (under a minute).
# Paths are absolute (ROOT is this Makefile's folder), so `make -C /path/to/xmd demo` and
# `make -f /path/to/xmd/Makefile test` work from any directory.
.PHONY: demo test test-fast lint venv
ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
ARGS ?=
# Modules whose docstring examples are run as tests (doctest).
DOCTESTS = xmd_cli/metrics xmd_cli/models/distill.py xmd_cli/models/distill_config.py xmd_cli/models/distill_losses.py \
	xmd_cli/models/distill_heads.py xmd_cli/shards xmd_cli/registry.py xmd_cli/io.py xmd_cli/data/containers.py

demo:
	@venv=$$($(ROOT)/scripts/venv.sh) && "$$venv/bin/xmd" demo $(ARGS)

test: lint
	@venv=$$($(ROOT)/scripts/venv.sh) && cd $(ROOT) && "$$venv/bin/python" -m pytest -q --doctest-modules tests $(DOCTESTS) $(ARGS)

test-fast:
	@venv=$$($(ROOT)/scripts/venv.sh) && cd $(ROOT) && "$$venv/bin/python" -m pytest -q -m "not slow" --doctest-modules tests $(DOCTESTS) $(ARGS)

lint:
	@venv=$$($(ROOT)/scripts/venv.sh) && cd $(ROOT) && "$$venv/bin/python" -m ruff check --no-cache xmd_cli tests bench scripts

venv:
	@$(ROOT)/scripts/venv.sh
