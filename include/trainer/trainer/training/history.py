"""One CSV row per epoch, `models/{rank}/logs/history.csv`: the run view's learning curves.

Keras's CSVLogger keeps one file open for the whole fit and appends to it. An object store has
neither: a GCS object appears only when its upload closes (a preempted pod left no row at all)
and cannot be appended to, and on `gs://` Keras 3's CSVLogger failed the train step at its very
end (`'GFile' object has no attribute 'closed'`, found by tests/gcs). So the file is rewritten
whole through `trainer.storage` after every epoch: local or `gs://` alike, each version complete.
The format is CSVLogger's (header `epoch,<metrics sorted>`), so older runs read the same.
"""
from __future__ import annotations

import csv
import io

import keras

from trainer import storage


class EpochHistory(keras.callbacks.Callback):
    """A resumed pod appends below the rows already there; the reader keeps an epoch's last row."""

    def __init__(self, uri: str):
        super().__init__()
        self.uri = uri
        self.rows: list[list] | None = None  # read once, at the first epoch: one write per epoch after

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = dict(logs or {})
        if self.rows is None:
            text = storage.read_text(self.uri) if storage.exists(self.uri) else ""
            self.rows = list(csv.reader(io.StringIO(text))) or [["epoch", *sorted(logs)]]
        columns = self.rows[0][1:]  # a resumed fit keeps the file's columns
        self.rows.append([epoch, *(_value(logs.get(name)) for name in columns)])
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(self.rows)
        storage.write_text(self.uri, out.getvalue())


def _value(value) -> str:
    if value is None:
        return ""
    try:
        return repr(float(value))
    except (TypeError, ValueError):
        return str(value)
