# The two set-up commands of the README. Each builds the venv when it is missing
# (scripts/venv.sh: outside the clone, keyed by a hash of requirements.txt).
.PHONY: demo test venv
ARGS ?=

demo:
	@venv=$$(scripts/venv.sh) && "$$venv/bin/xmd" demo $(ARGS)

test:
	@venv=$$(scripts/venv.sh) && cd $(CURDIR) && "$$venv/bin/python" -m pytest -q $(ARGS)

venv:
	@scripts/venv.sh
