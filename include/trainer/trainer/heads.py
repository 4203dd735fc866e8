"""Moved to the model SDK: `trainer.sdk.heads` (also `from trainer.sdk import heads`).

This name stays so that a model written as `from trainer import heads` keeps working; it is
the same module object, not a copy.
"""
import sys

from trainer.sdk import heads as _heads

sys.modules[__name__] = _heads
