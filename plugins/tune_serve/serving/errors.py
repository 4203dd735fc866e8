"""Why a deployment failed, split by whether retrying the task could help."""
from airflow.sdk.exceptions import AirflowException, AirflowFailException


class ModelRejected(AirflowFailException):
    """The new version failed to load or its smoke test: the same model would fail again, so
    the task is not retried. The previous stable version keeps serving."""


class ServingUnavailable(AirflowException):
    """The server could not be started or reached in time (retried like any task failure)."""
