"""The error every rule of the contract raises on bad input."""
from __future__ import annotations


class BadInput(Exception):
    """Input the user must fix: the trainer exits 2 (never retried, nothing written), the
    Airflow side fails `validate_params`.

    `field` names the flag, column or key at fault so the message can point at it.
    """

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
