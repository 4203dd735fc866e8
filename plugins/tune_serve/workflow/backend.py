"""The platform the DAG runs on, behind one typed interface.

`current()` returns the backend configuration picks (`config.backend()`): `local`
(`tune_serve.local.backend`: detached processes) or `kubernetes`/`gke`
(`tune_serve.kubernetes.backend`: pods, a Job for the chief). Each is a module that
satisfies `Backend`; the DAG uses nothing else of either (see docs/contracts.md).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, cast

from tune_contract.results import OracleHandle
from tune_serve import config

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, XComArg
    from airflow.sdk.definitions.mappedoperator import OperatorPartial

    from tune_serve.serving.deploy_decision import DeployResult
    from tune_serve.workflow.podspec import PodTask

_MODULES = {"local": "tune_serve.local.backend", "kubernetes": "tune_serve.kubernetes.backend",
            "gke": "tune_serve.kubernetes.backend"}

# What the DAG hands a backend at parse time: values, or XComArgs of an upstream task's result.
Arguments: TypeAlias = "list[str] | XComArg"  # a step's command-line arguments (`to_argv()`)
# the plan's chief fields (`tune_contract.steps.OracleArgs`)
OracleFields: TypeAlias = "dict[str, Any] | XComArg"
Handle: TypeAlias = "OracleHandle | XComArg"  # `start_oracle`'s result: where the chief is, how to reach it


class Backend(Protocol):
    """Pod tasks, the Keras Tuner chief and serving on one platform.

    Both platforms name their operators alike: `{Platform}[{Role}]PodOperator` for a pod task
    and `{Platform}{Start|Wait|Stop}Oracle{Operator|Sensor}` for the chief, the platform `Local`,
    `Kubernetes` or `GKE`, the suffix the Airflow kind (local: `LocalPodOperator`,
    `LocalStartOracleOperator`, `LocalWaitOracleOperator`, `LocalStopOracleOperator`; kubernetes:
    `KubernetesTrainerPodOperator`, `KubernetesTunerPodOperator`, `KubernetesStartOracleOperator`,
    `KubernetesWaitOracleSensor`, `KubernetesStopOracleOperator`, and `GKE…` for each).
    Operators take KubernetesPodOperator's names (`cmds`, `arguments`, `env_vars`).
    """

    def pod_operator(self, spec: PodTask, *, arguments: Arguments | None = None) -> BaseOperator:
        """One pod task (`arguments`: default the spec's own); its result JSON is the task's
        `return_value` XCom."""
        ...

    def mapped_pod_operator(self, spec: PodTask) -> OperatorPartial:
        """`OperatorClass.partial(...)`; the DAG calls `.expand(arguments=...)`."""
        ...

    def start_oracle(self, spec: PodTask, oracle_args: OracleFields) -> BaseOperator:
        """Start the chief without waiting; XCom: its `OracleHandle` (`{"address": "host:port", ...}`)."""
        ...

    def wait_oracle(self, spec: PodTask, handle: Handle) -> BaseOperator:
        """Wait for the chief without holding a worker slot; restart it if it crashed; XCom = its
        result (`tune_contract.results.OracleResult`)."""
        ...

    def stop_oracle(self, handle: Handle) -> BaseOperator:
        """Teardown: remove the chief whatever the run's outcome."""
        ...

    def deploy(self, model_path: str, model_name: str, instance: dict[str, Any],
               candidate: dict[str, Any] | None = None) -> DeployResult:
        """Serve `model_path` as the next version of `model_name` once a prediction of `instance`
        succeeds on it; the previous version keeps serving otherwise. A run's `candidate`
        ({run_id, rank, judged_against}) is decided under the model's deploy lock first
        (tune_serve.serving.publisher): published, already published, or refused."""
        ...

    def current_model(self, model_name: str) -> str | None:
        """The SavedModel the stable version serves (the evaluation baseline), or None."""
        ...

    def version_labels(self, model_name: str) -> dict[str, int]:
        """The serving labels (`stable`, `canary`) and the version each points at now."""
        ...


def current() -> Backend:
    """The backend chosen by configuration (never by editing the DAG)."""
    return cast(Backend, importlib.import_module(_MODULES[config.backend()]))


if TYPE_CHECKING:  # mypy checks that both modules implement the protocol
    from tune_serve.kubernetes import backend as _kubernetes
    from tune_serve.local import backend as _local

    _IMPLEMENTATIONS: tuple[Backend, ...] = (_local, _kubernetes)
