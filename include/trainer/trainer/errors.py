"""The two ways a step fails on purpose."""


class BadInput(Exception):
    """Input the user must fix: exit 2, never retried, nothing written.

    `field` names the flag, column or key at fault so the message can point at it.
    """

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class StepFailed(Exception):
    """A real failure that is not the user's input (exit 1)."""
