# Every environment is built from the project's own pinned files; nothing is installed by hand.
PYTHON ?= python3
VENV   := .venv
UV     := $(VENV)/tools/bin/uv
UV_VERSION := 0.13.9

AIRFLOW_PY := $(VENV)/airflow/bin/python
TRAINER_PY := $(VENV)/trainer/bin/python
SERVING_PY := $(VENV)/serving/bin/python

.PHONY: envs demo test test-gcs lint test-unit test-e2e chaos bench render-k8s up stop lock clean

# The whole workflow on the bundled diamonds data, through a real local Airflow.
# MODEL=classifier: the shipped example classifier on titanic (binary), to a served prediction with
# class probabilities; MODEL=classifier-iris: the same on iris (multiclass). See scripts/demo.py.
demo: envs
	scripts/airflow-stack.sh start
	MODEL='$(MODEL)' PYTHONPATH=plugins $(AIRFLOW_PY) scripts/demo.py

# Every test: lint and types, trainer, serving, Airflow side, and the DAG end to end through the scheduler.
test: envs lint
	PYTHONPATH=include/trainer $(TRAINER_PY) -m pytest tests/trainer -q
	$(SERVING_PY) -m pytest tests/serving -q
	$(AIRFLOW_PY) -m pytest tests/airflow tests/e2e -q
	$(MAKE) test-gcs

# Both sides on gs:// against a GCS emulator (tests/gcs_emulator.py): TensorFlow's own client reaches
# it only in a private network and mount namespace (root: unshare); elsewhere the tests skip, saying so.
test-gcs: envs
	$(AIRFLOW_PY) tests/gcs_emulator.py run -- $(AIRFLOW_PY) -m pytest tests/gcs -q

# ruff (ruff.toml: E, W, F, B, SIM, import order, pyupgrade at 110 columns) and mypy (mypy.ini) on the Airflow side and the contract.
lint: $(VENV)/airflow/.done
	$(VENV)/airflow/bin/ruff check plugins include/contract dags
	$(VENV)/airflow/bin/mypy

# Fault injection through the real scheduler (tests/chaos): kills, lost tuners, rejected deploys,
# a scheduler crash, bad input; ends with one line: faults injected, survived, lost.
chaos: envs
	$(AIRFLOW_PY) -m pytest tests/chaos -q; status=$$?; $(AIRFLOW_PY) tests/chaos/summary.py && exit $$status

# Measurements, not tests (bench/): search quality, tuner scaling, orchestration overhead,
# serving latency, preemption cost, model quality, classifier quality. ~45 min; BENCH="--quick" for a smoke run.
# The search benchmark (all benchmarks, or BENCH naming search) also needs the bench-only BoTorch env.
BENCH_ENVS = $(if $(filter search,$(BENCH))$(if $(filter-out --quick --snapshot,$(BENCH)),,all),$(VENV)/bench-botorch/.done)
bench: envs $(BENCH_ENVS)
	$(AIRFLOW_PY) bench/run.py $(BENCH)

# Bench-only (issue 25): BoTorch and PyTorch for `make bench BENCH=search`, in no image and no
# main environment. pip, not uv: torch 2.13.0's CPU wheel lies in this machine's wheel folder,
# which pip's configuration reads and uv does not (uv would fetch a CUDA build of several GB).
$(VENV)/bench-botorch/.done: constraints/bench-botorch.txt
	$(PYTHON) -m venv $(VENV)/bench-botorch
	$(VENV)/bench-botorch/bin/pip install -q --require-hashes --no-deps -r constraints/bench-botorch.txt
	touch $@

# Every Kubernetes object the DAG would create for a conf, as YAML, validated against the API schema.
render-k8s: $(VENV)/airflow/.done
	$(AIRFLOW_PY) scripts/render_k8s.py $(or $(OUT),out/k8s) $(if $(CONF),--conf '$(CONF)') $(if $(BACKEND),--backend $(BACKEND))

up: envs
	scripts/airflow-stack.sh start

stop:
	scripts/airflow-stack.sh stop
	-PYTHONPATH=plugins $(AIRFLOW_PY) -c "from tune_serve.local import serving as local; local.stop_all_local_servers()"

envs: $(VENV)/airflow/.done $(VENV)/trainer/.done $(VENV)/serving/.done

# The contract package (include/contract, standard library only) is importable in every
# environment: a .pth file puts its folder on the path, as the images' PYTHONPATH does.
CONTRACT_PTH = echo "$(CURDIR)/include/contract" > $$($(1) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/tune_contract.pth
# The models folder (user Keras models, docs/contracts.md "Model contract"), on the trainer's path
# only, as /opt/models is in the trainer image: the Airflow side never imports a model.
MODELS_PTH = echo "$(CURDIR)/include/models" > $$($(1) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/tune_serve_models.pth

# Each environment is exactly its lock file (compiled from its requirements files by `make
# lock`): `pip sync` installs that set and nothing else, and --require-hashes refuses any
# file whose hash is not in the lock. (uv refuses --require-hashes on `-r requirements.txt
# -c lock` because requirements.txt has unpinned names, though it checks the lock's hashes.)
SYNC = $(UV) pip sync -q --require-hashes

$(UV): constraints/tools.txt
	$(PYTHON) -m venv $(VENV)/tools
	$(VENV)/tools/bin/pip install -q --require-hashes -r constraints/tools.txt
	touch $@

# Airflow side: Airflow + providers, and the test tools. Never TensorFlow.
$(VENV)/airflow/.done: requirements.txt requirements-dev.txt constraints/airflow.txt Makefile | $(UV)
	$(UV) venv -q --allow-existing --python $(PYTHON) $(VENV)/airflow
	$(SYNC) --python $(VENV)/airflow/bin/python constraints/airflow.txt
	$(call CONTRACT_PTH,$(VENV)/airflow/bin/python)
	touch $@

# What runs inside every pod (the trainer image installs constraints/trainer-image.txt, resolved
# within this lock), plus the trainer's test and benchmark tools.
$(VENV)/trainer/.done: include/trainer/requirements.txt include/trainer/requirements-dev.txt constraints/trainer.txt Makefile | $(UV)
	$(UV) venv -q --allow-existing --python $(PYTHON) $(VENV)/trainer
	$(SYNC) --python $(VENV)/trainer/bin/python constraints/trainer.txt
	$(call CONTRACT_PTH,$(VENV)/trainer/bin/python)
	$(call MODELS_PTH,$(VENV)/trainer/bin/python)
	touch $@

# The local stand-in for TensorFlow Serving (KServe speaks TF Serving's REST API).
$(VENV)/serving/.done: include/serving/requirements.txt constraints/serving.txt Makefile | $(UV)
	$(UV) venv -q --allow-existing --python $(PYTHON) $(VENV)/serving
	$(SYNC) --python $(VENV)/serving/bin/python constraints/serving.txt
	$(call CONTRACT_PTH,$(VENV)/serving/bin/python)
	touch $@

# Re-resolve the pins (run after editing a requirements file; commit the result once tests pass).
# Every pin carries its hashes and is resolved for the images' and CI's platform (CPython 3.11,
# x86_64 Linux) whatever machine runs this. The image locks hold only what each image installs
# (no test tools; the trainer's adds TensorFlow's CUDA wheels) at the versions the tests ran with.
LOCK = $(UV) pip compile -q --generate-hashes --python-version 3.11 --python-platform x86_64-unknown-linux-gnu
lock: | $(UV)
	echo "uv==$(UV_VERSION)" | $(LOCK) - -o constraints/tools.txt
	$(LOCK) requirements.txt requirements-dev.txt -o constraints/airflow.txt
	$(LOCK) include/trainer/requirements.txt include/trainer/requirements-dev.txt -o constraints/trainer.txt
	$(LOCK) include/serving/requirements.txt -o constraints/serving.txt
	$(LOCK) requirements.txt -c constraints/airflow.txt -o constraints/airflow-image.txt
	$(LOCK) include/trainer/requirements.txt include/trainer/requirements-gpu.txt -c constraints/trainer.txt \
		-o constraints/trainer-image.txt

clean:
	rm -rf $(VENV) .airflow
