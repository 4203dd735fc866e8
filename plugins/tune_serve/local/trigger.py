"""The triggerer's side of waiting for a local pod process (the Keras Tuner chief).

Waiting in the triggerer holds no worker slot and keeps one task try for the whole wait; a
rescheduling sensor instead counts a try per poke on Airflow 3.3 and can race its own
previous poke (apache/airflow#71172).
"""
from __future__ import annotations

import asyncio
from pathlib import Path

from airflow.triggers.base import BaseTrigger, TriggerEvent

from tune_serve.local.process import RUNNING, LocalProcess


class LocalProcessTrigger(BaseTrigger):
    """Fires once the process in `directory` is no longer running (succeeded, failed or killed);
    streams its new output lines into the task log meanwhile."""

    def __init__(self, directory: str, poll_seconds: float = 2.0, log_offset: int = 0):
        super().__init__()
        self.directory, self.poll_seconds, self.log_offset = directory, poll_seconds, log_offset

    def serialize(self):
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"directory": self.directory, "poll_seconds": self.poll_seconds,
                 "log_offset": self.log_offset})

    async def run(self):
        process = LocalProcess(Path(self.directory))
        offset = self.log_offset
        while True:
            state = await asyncio.to_thread(process.state)
            lines, offset = await asyncio.to_thread(process.read_log, offset)
            for line in lines:
                self.log.info("chief: %s", line)
            if state != RUNNING:
                yield TriggerEvent({"state": state, "log_offset": offset})
                return
            await asyncio.sleep(self.poll_seconds)
