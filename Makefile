# questlog — every target is a thin wrapper over a script in bin/ or a tool in .venv.
.DEFAULT_GOAL := help
.PHONY: help setup lock test test-unit test-integration lint chart-check k8s-tools cluster run status load load-ui bench bench-quick report chaos chaos-sabotage clean

PY := .venv/bin/python
PYTEST := .venv/bin/pytest

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  make %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: ## install the Python env (pinned lock) and the pinned JVM jars; idempotent
	@bin/setup

lock: ## re-pin the Python dependencies (requirements-dev.lock, services/*/requirements.lock, loadtest/requirements.lock)
	@bin/lock

lint: setup ## ruff check, ruff format --check and mypy (configured in pyproject.toml)
	@.venv/bin/ruff check .
	@.venv/bin/ruff format --check .
	@.venv/bin/mypy

chart-check: setup ## the Helm chart offline: lint, render every ci scenario, strict schemas, policy, skaffold
	@$(PY) -m questlog_k8s.chartcheck

k8s-tools: setup ## build the pinned Go tools (helm, kubeconform, skaffold, etcd, kube-apiserver, kubectl, spark-operator) into ~/.cache/questlog/tools
	@$(PY) -m questlog_k8s.tools

cluster: setup ## a local Kubernetes control plane (etcd + kube-apiserver, no nodes) on loopback; state under var/cluster; Ctrl-C stops it
	@$(PY) -m questlog_k8s.cluster

test: setup lint chart-check ## lint, chart-check, then every test: unit, integration (real Kafka, Spark, Delta, HDFS), e2e
	@$(PYTEST)

test-unit: setup ## only the tests that need no infrastructure
	@$(PYTEST) -m "not integration and not e2e"

test-integration: setup ## only the tests on real infrastructure
	@$(PYTEST) -m "integration or e2e"

run: setup ## run questlog in the foreground (Ctrl-C stops everything); state under ./var; TRINO=1 adds Trino, LAKE=hdfs puts the lake on HDFS
	@$(if $(TRINO),QUESTLOG_TRINO=$(TRINO)) $(if $(LAKE),QUESTLOG_LAKE=$(LAKE)) bin/run

status: ## what runs, where the lake is, the extractor's lag and each table's freshness
	@bin/status

load: ## Locust headless against `make run` (short profile), then the exact ledger check
	@bin/load

load-ui: ## Locust's web UI on http://127.0.0.1:8089 against `make run`
	@QUESTLOG_LOAD_QUERY_URL=http://127.0.0.1:8000 .venv/bin/locust -f loadtest/locustfile.py \
		-H http://127.0.0.1:5000 --web-host 127.0.0.1 --web-port 8089

bench: setup ## every benchmark side by side with its baseline (long); writes bench/results/latest.md
	@.venv/bin/python bench/run.py

bench-quick: setup ## the same cases at smaller sizes (minutes)
	@.venv/bin/python bench/run.py --quick

report: setup ## the analytics report from the query service (make run) into reports/<UTC time>/; options: make report ARGS="--base-url URL --token-file FILE --since ISO"
	@bin/report $(ARGS)

chaos: setup ## the reliability suite at full scale (T1-T14, minutes): one line of figures each; writes chaos/results/latest.md
	@QUESTLOG_CHAOS_COMMAND="make chaos" $(PYTEST) chaos --chaos-scale full -p no:cacheprovider

chaos-sabotage: setup ## every chaos scenario with its safety mechanism broken on purpose: passes only if each scenario then fails
	@$(PYTEST) chaos --sabotage -p no:cacheprovider

clean: ## remove ./var (all local state: Kafka data, lake tables, logs)
	rm -rf var
