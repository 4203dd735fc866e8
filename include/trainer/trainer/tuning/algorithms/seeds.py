"""Independent random streams from one run seed.

Keras Tuner advances its seed by one per value drawn, so with the run seed passed as is,
`--seed 1` and `--seed 2` replay almost the same points one value apart. Every consumer of
randomness instead takes a seed hashed from (run seed, purpose): nearby run seeds and
different purposes give unrelated streams.
"""
from __future__ import annotations

import zlib

import numpy as np


def derive(seed: int, purpose: str) -> int:
    """A seed in [1, 2**31 - 1] for `purpose` under the run's `seed` (never 0: Keras Tuner
    takes a seed of 0 as 'pick one at random')."""
    state = np.random.SeedSequence([int(seed), zlib.crc32(purpose.encode())]).generate_state(1)[0]
    return int(state) % (2**31 - 1) + 1
