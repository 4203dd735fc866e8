# Every environment is built from the project's own pinned files; nothing is installed by hand.
PYTHON ?= python3
VENV   := .venv
UV     := $(VENV)/tools/bin/uv
UV_VERSION := 0.13.9

.PHONY: envs demo test test-fast chaos bench render-k8s airflow-up airflow-down clean

envs: $(VENV)/airflow/.done $(VENV)/trainer/.done $(VENV)/serving/.done

$(UV):
	$(PYTHON) -m venv $(VENV)/tools
	$(VENV)/tools/bin/pip install -q uv==$(UV_VERSION)

# Airflow side: Airflow + providers, and the test tools. Never TensorFlow.
$(VENV)/airflow/.done: requirements.txt requirements-dev.txt constraints/airflow.txt | $(UV)
	$(UV) venv -q --allow-existing --python $(PYTHON) $(VENV)/airflow
	$(UV) pip install -q --python $(VENV)/airflow/bin/python -r requirements.txt -r requirements-dev.txt -c constraints/airflow.txt
	touch $@

# What runs inside every pod (the trainer image installs the same two files).
$(VENV)/trainer/.done: include/trainer/requirements.txt constraints/trainer.txt | $(UV)
	$(UV) venv -q --allow-existing --python $(PYTHON) $(VENV)/trainer
	$(UV) pip install -q --python $(VENV)/trainer/bin/python -r include/trainer/requirements.txt -c constraints/trainer.txt
	touch $@

# The local stand-in for TensorFlow Serving (KServe speaks TF Serving's REST API).
$(VENV)/serving/.done: include/serving/requirements.txt constraints/serving.txt | $(UV)
	$(UV) venv -q --allow-existing --python $(PYTHON) $(VENV)/serving
	$(UV) pip install -q --python $(VENV)/serving/bin/python -r include/serving/requirements.txt -c constraints/serving.txt
	touch $@

# Re-resolve the pins (run after editing a requirements file; commit the result once tests pass).
lock: | $(UV)
	$(UV) pip compile -q --python $(PYTHON) requirements.txt requirements-dev.txt -o constraints/airflow.txt
	$(UV) pip compile -q --python $(PYTHON) include/trainer/requirements.txt -o constraints/trainer.txt
	$(UV) pip compile -q --python $(PYTHON) include/serving/requirements.txt -o constraints/serving.txt

clean:
	rm -rf $(VENV) .airflow
