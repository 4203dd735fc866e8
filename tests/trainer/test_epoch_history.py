"""models/{rank}/logs/history.csv, rewritten whole after every epoch (trainer.training.history):
what Keras's CSVLogger wrote, without an open file an object store cannot keep (tests/gcs)."""
from __future__ import annotations

import csv

from trainer.training.history import EpochHistory


def test_each_epoch_leaves_a_complete_file_and_a_resumed_fit_appends(tmp_path):
    uri = str(tmp_path / "logs" / "history.csv")
    first = EpochHistory(uri)
    first.on_epoch_end(0, {"val_mae": 2.5, "loss": 9.0, "mae": 3.0})
    assert list(csv.reader(open(uri))) == [["epoch", "loss", "mae", "val_mae"], ["0", "9.0", "3.0", "2.5"]]
    first.on_epoch_end(1, {"val_mae": 2.0, "loss": 7.0, "mae": 2.5})
    resumed = EpochHistory(uri)  # a new pod after a preemption: same columns, rows below
    resumed.on_epoch_end(1, {"mae": 2.4, "loss": 6.5, "val_mae": 1.9, "lr": 0.01})
    rows = list(csv.reader(open(uri)))
    assert rows[0] == ["epoch", "loss", "mae", "val_mae"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "1"] and rows[-1] == ["1", "6.5", "2.4", "1.9"]
    assert not [p for p in (tmp_path / "logs").iterdir() if ".tmp-" in p.name]
