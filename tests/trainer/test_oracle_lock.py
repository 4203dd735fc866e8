"""The chief's oracle lock is released when a call is refused.

Keras Tuner's `synchronized` leaves the oracle's lock held when the decorated method raises;
the chief refuses reports by raising (NotHolder, ForgedTrial), so with it the next call from
another gRPC thread would hang the search.
"""
from __future__ import annotations

import threading

import pytest
from trainer.tuning.distributed.oracles import NotHolder, synchronized


class _Oracle:
    @synchronized
    def refuse(self):
        raise NotHolder("trial 1 is held by tuner-1, not by tuner-0")

    @synchronized
    def answer(self):
        return "answered"


def test_a_refused_call_does_not_leave_the_oracle_locked_for_other_threads():
    oracle = _Oracle()
    with pytest.raises(NotHolder):
        oracle.refuse()
    result = []
    other = threading.Thread(target=lambda: result.append(oracle.answer()), daemon=True)
    other.start()
    other.join(timeout=10)
    assert result == ["answered"], "the oracle's lock was left held by the refused call"
