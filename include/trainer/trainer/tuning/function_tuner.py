"""The tuner of the benchmark objectives: each epoch evaluates the function (`benchmarks`)
instead of fitting a model, through the same leased, resumable path as a Keras trial."""
from __future__ import annotations

import time

from trainer.tuning.algorithms.benchmarks import evaluate
from trainer.tuning.distributed.worker import LeasedTuner


class FunctionTuner(LeasedTuner):
    def __init__(self, oracle, settings, tuner_id: str, sleep_seconds: float):
        super().__init__(oracle, settings, tuner_id)
        self.sleep_seconds = sleep_seconds

    def run_execution(self, trial, values, execution, epochs, initial_epoch, progress, record):
        start = max(initial_epoch, record.last_epoch())
        self.note_resumed(start - initial_epoch)
        for epoch in range(start, epochs):
            self._sleep()
            record.epochs[epoch] = {"value": evaluate(self.settings.args.objective_function, values, epoch)}
            progress.save(execution, record)
            if self.report_epoch(execution, epoch, record.epochs[epoch]):
                break  # pruned: finished, as a Keras trial stopped by its callback
        record.complete = True
        progress.save(execution, record)
        return record

    def _sleep(self) -> None:
        end = time.monotonic() + self.sleep_seconds
        while True:  # in slices, so a lost lease stops the trial promptly
            self.check_lease()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.1))


def make_tuner(oracle, settings, tuner_id: str, sleep_seconds: float):
    return FunctionTuner(oracle, settings, tuner_id, sleep_seconds)
