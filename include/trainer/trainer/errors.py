"""The two ways a step fails on purpose."""
from tune_contract.errors import BadInput  # input the user must fix: exit 2; the contract's own rules raise it too

__all__ = ["BadInput", "StepFailed"]


class StepFailed(Exception):
    """A real failure that is not the user's input (exit 1)."""
