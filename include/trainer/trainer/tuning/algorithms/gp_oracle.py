"""The `gp` algorithm: a Keras Tuner `Oracle` doing Gaussian-process Bayesian optimisation that
knows about the trials still running.

Keras Tuner's own `bayesian` oracle fits its GP with fixed kernel settings, scores running
trials from the previous fit (after a chief restart, every running trial scores exactly 1.0)
and spends 3·d random trials first. Here (bench/RESULTS.md, 2026-11-29, `BENCH=gp-limit`):

- a scrambled Sobol start of `START_POINTS` trials (asked, not completed: with 4 tuners the GP
  takes over as soon as 2 results are in, instead of 4 more blind points);
- scikit-learn's GP (already in the image through `keras-tuner[bayesian]`): Matern 5/2 with one
  length scale per hyperparameter fitted by maximum likelihood, bounded to LENGTH_SCALES in the
  unit cube (wider bounds let 4-10 points fit a kernel that explains nothing), the objective
  warped by Yeo-Johnson (errors span orders of magnitude);
- the running trials as "kriging believers": assumed at the GP's mean, which lowers the
  expected improvement around them, so four tuners asking at once are mostly sent to different
  places. Not always far apart: the EI uses the predictive standard deviation, which includes
  the fitted white noise, so a point next to a running trial keeps some EI (seed 3 of the
  in-process tests put two running trials 0.015 apart on Branin); taking the noise out of the
  EI's deviation is the known fix, not made because the benchmark figures were measured
  without it;
- expected improvement, maximised by L-BFGS-B from the best of CANDIDATES random points;
- at most MAX_FIT results in a fit (the best half and a sample of the others);
- trials stopped early by the pruning rule as censored results (issue 25): not their early
  score as if final, but the GP's expectation given that the rule judged them no better than
  the median (ASHA: the best third) of the complete ones (`_uncensor`); the warp is fitted to
  the complete results only;
- the kernel's maximum-likelihood fit seeded by the number of results and kept for the next
  suggestion on the same results (four tuners asking between two results fit once).

Options left off, for bench/search_batch.py (class attributes, set on the oracle): `ei_noise_free`
(the fitted noise out of the EI's deviation), `local` (a share of the acquisition's candidates
around the best results), `starts` (L-BFGS-B runs). Their runs of 2026-12-07 were stopped before
a figure (a machine at load 10-20): none is measured yet.

Hyperparameters live in Keras Tuner's own [0, 1] coordinates (`value_to_prob`/`prob_to_value`:
log scales, steps and choices as Keras Tuner maps them); an inactive conditional one sits at
its default's coordinate. Nothing is persisted beyond the oracle's trials: each suggestion
is a function of (run seed, number of trials, their results), so a restarted chief suggests
what an uninterrupted one would.
"""
from __future__ import annotations

import logging
import math
import warnings

import keras_tuner as kt
import numpy as np
from keras_tuner.src.engine import trial as trial_module
from keras_tuner.src.engine.hyperparameters import hp_types
from scipy.optimize import minimize
from scipy.stats import norm, qmc

from trainer.tuning.algorithms import seeds

Status = trial_module.TrialStatus
log = logging.getLogger("trainer.tuning.gp")

START_POINTS = 4
LENGTH_SCALES = (0.05, 2.0)
CANDIDATES = 2048
STARTS = 5  # L-BFGS-B runs, from the best candidates
# A GP fit costs the cube of its points: beyond this many results it fits the best half of
# them and a seeded sample of the rest (max_trials goes to 10,000). Measured on 5 parameters,
# one BLAS thread, a loaded 2-core machine: 3.0 s per suggestion fitting 256 results, 0.8 s
# fitting 128 (with 300 results in the search, too: the cap holds it there).
MAX_FIT = 128


class GPOracle(kt.Oracle):
    ei_noise_free = False
    local = 0.0
    starts = STARTS
    candidates = CANDIDATES
    censored_pruning = True
    def __init__(self, objective=None, max_trials=None, hyperparameters=None, seed=None, **kwargs):
        super().__init__(objective=objective, max_trials=max_trials, hyperparameters=hyperparameters, seed=seed,
                         **kwargs)

    # -- the unit cube ---------------------------------------------------------------------------

    def _tuned(self) -> list:
        return [hp for hp in self.hyperparameters.space if not isinstance(hp, hp_types.Fixed)]

    def _encode(self, values: dict) -> np.ndarray:
        hps = kt.HyperParameters()
        hps.values = dict(values)
        return np.array([hp.value_to_prob(values[hp.name]) if hp.name in values and
                         hps._conditions_are_active(hp.conditions) else hp.value_to_prob(hp.default)
                         for hp in self._tuned()], dtype=float)

    def _decode(self, point: np.ndarray) -> dict:
        """Values in declaration order (a parent before the hyperparameters it activates)."""
        coordinate = {hp.name: float(u) for hp, u in zip(self._tuned(), point)}
        hps = kt.HyperParameters()
        for hp in self.hyperparameters.space:
            hps.merge([hp])
            if hps.is_active(hp):
                hps.values[hp.name] = hp.value if hp.name not in coordinate else \
                    _within(hp, hp.prob_to_value(coordinate[hp.name]))
        return hps.values

    # -- Keras Tuner's Oracle interface ----------------------------------------------------------

    def populate_space(self, trial_id):
        rng = np.random.default_rng(seeds.derive(self.seed, f"gp/{len(self.trials)}"))
        completed = self._completed()
        for attempt in range(self._max_collisions + 1):
            index = len(self.trials) + attempt
            if len(self.trials) < START_POINTS or len(completed) < 2:
                point = self._startup_point(index)
            elif attempt == 0:
                point = self._suggest(completed, rng)
            else:  # the suggestion was a duplicate (a discrete space): a random point instead
                point = rng.random(len(self._tuned()))
            values = self._decode(point)
            if not self._duplicate(values):
                return {"status": Status.RUNNING, "values": values}
        return {"status": Status.STOPPED, "values": None}  # a discrete space tried out

    def _completed(self) -> list:
        return [t for _, t in sorted(self.trials.items())
                if t.status == Status.COMPLETED and t.score is not None and math.isfinite(t.score)]

    def _startup_point(self, index: int) -> np.ndarray:
        d = max(1, len(self._tuned()))
        sobol = qmc.Sobol(d, scramble=True, seed=seeds.derive(self.seed, "gp/startup"))
        size = 2 ** max(2, math.ceil(math.log2(index + 1)))  # a power of two keeps Sobol's balance
        return sobol.random(size)[index][: len(self._tuned())]

    def _suggest(self, completed: list, rng: np.random.Generator) -> np.ndarray:
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.preprocessing import PowerTransformer

        d = len(self._tuned())
        sign = -1.0 if self.objective.direction == "max" else 1.0  # the GP minimises
        if len(completed) > MAX_FIT:
            ranked = sorted(completed, key=lambda t: sign * t.score)
            rest = ranked[MAX_FIT // 2:]
            chosen = rng.choice(len(rest), MAX_FIT - MAX_FIT // 2, replace=False)
            completed = ranked[:MAX_FIT // 2] + [rest[i] for i in sorted(chosen)]
        X = np.array([self._encode(t.hyperparameters.values) for t in completed])
        y = sign * np.array([t.score for t in completed], dtype=float)
        pruned = self._pruned_ids()
        censored = np.array([t.trial_id in pruned for t in completed], dtype=bool)
        if not (self.censored_pruning and censored.any() and np.ptp(y[~censored]) > 0):
            censored[:] = False  # too few complete results to say what a pruned one means: as scored
        full = y[~censored]  # the warp is fitted to complete results (an early epoch's score can be far off)
        z = PowerTransformer(method="yeo-johnson").fit(full.reshape(-1, 1)).transform(y.reshape(-1, 1)).ravel() \
            if np.ptp(full) > 0 else np.zeros_like(y)
        with warnings.catch_warnings():  # convergence warnings on a handful of points
            warnings.simplefilter("ignore")
            if censored.any():
                z = self._uncensor(X, z, censored)
            gp = GaussianProcessRegressor(self._fitted_kernel(X, z, d), optimizer=None).fit(X, z)
            running = [self._encode(t.hyperparameters.values) for t in self.ongoing_trials.values()]
            if self.ei_noise_free:  # the fitted noise on the diagonal, not in the predictive deviation
                noise = gp.kernel_.k2.noise_level
                smooth = gp.kernel_.k1
                believed = (np.vstack([X, np.array(running)]), np.concatenate([z, gp.predict(np.array(running))])) \
                    if running else (X, z)
                gp = GaussianProcessRegressor(smooth, optimizer=None, alpha=noise).fit(*believed)
            elif running:  # kriging believers: the running trials at the GP's mean, the same kernel
                P = np.array(running)
                gp = GaussianProcessRegressor(gp.kernel_, optimizer=None).fit(np.vstack([X, P]),
                                                                               np.concatenate([z, gp.predict(P)]))
        best = z.min()

        def negative_ei(u):
            mu, sigma = gp.predict(np.atleast_2d(u), return_std=True)
            sigma = np.maximum(sigma, 1e-9)
            g = (best - mu) / sigma
            return -(sigma * (g * norm.cdf(g) + norm.pdf(g)))

        candidates = rng.random((self.candidates, d))
        if self.local:  # a share of the candidates around the best results, at several scales
            top = X[np.argsort(z)[:min(5, len(z))]]
            n = int(self.candidates * self.local)
            scales = rng.choice([0.01, 0.03, 0.1, 0.3], size=(n, 1))
            candidates[:n] = np.clip(top[rng.integers(len(top), size=n)] + rng.normal(size=(n, d)) * scales, 0, 1)
        found = [minimize(lambda u: negative_ei(u)[0], x0, bounds=[(0.0, 1.0)] * d, method="L-BFGS-B")
                 for x0 in candidates[np.argsort(negative_ei(candidates))[:self.starts]]]
        return np.clip(min(found, key=lambda r: r.fun).x, 0.0, 1.0)

    # -- the model's fit ----------------------------------------------------------------------------

    def _fitted_kernel(self, X: np.ndarray, z: np.ndarray, d: int):
        """The kernel fitted by maximum likelihood to (X, z): a function of the results alone (its
        restarts are seeded by the number of results), kept for the next suggestion on the same
        results (four tuners asking between two results refit nothing)."""
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        key = (X.tobytes(), z.tobytes())
        cached = getattr(self, "_fit_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern([0.3] * d, LENGTH_SCALES, nu=2.5) \
            + WhiteKernel(1e-6, (1e-9, 1e-2))
        gp = GaussianProcessRegressor(kernel, n_restarts_optimizer=2,
                                      random_state=seeds.derive(self.seed, f"gp/fit/{len(z)}")).fit(X, z)
        self._fit_cache = (key, gp.kernel_)
        return gp.kernel_

    def _pruned_ids(self) -> set:
        """Trials stopped early by the search's pruning rule (the chief's leased oracle sets
        `pruning`; the plain oracle has none). They end COMPLETED, scored with their best epoch."""
        pruning = getattr(self, "pruning", None)
        return set(getattr(pruning, "pruned", None) or ())

    def _uncensor(self, X: np.ndarray, z: np.ndarray, censored: np.ndarray) -> np.ndarray:
        """Pruned trials as what they are: censored results. The pruning rule stopped each one
        because it was unlikely to end better than the trials that ran to the end (the median rule:
        their median; ASHA: their best third), and its score is an early epoch's, not a final one.
        Each enters the GP at its expectation given only that: the mean of the GP fitted to the
        complete trials, truncated to no better than that quantile of their results
        (E[Z | Z >= m] = mu + sigma * pdf(a) / (1 - cdf(a)), a = (m - mu) / sigma)."""
        from sklearn.gaussian_process import GaussianProcessRegressor

        full = ~censored
        rule = getattr(getattr(self, "pruning", None), "rule", "median")
        m = float(np.quantile(z[full], 1 / 3 if rule == "asha" else 0.5))
        gp = GaussianProcessRegressor(self._fitted_kernel(X[full], z[full], X.shape[1]), optimizer=None) \
            .fit(X[full], z[full])
        mu, sigma = gp.predict(X[censored], return_std=True)
        sigma = np.maximum(sigma, 1e-9)
        a = (m - mu) / sigma
        tail = np.maximum(norm.sf(a), 1e-12)
        out = z.copy()
        out[censored] = np.maximum(mu + sigma * norm.pdf(a) / tail, m)
        return out


def _within(hp, value):
    """A numeric value inside its range: on a log scale a bound comes back from exp(log(bound))
    a rounding off (0.03 as 0.030000000000000002), which the chief rightly refuses."""
    if isinstance(hp, (hp_types.Float, hp_types.Int)):
        return min(max(value, hp.min_value), hp.max_value)
    return value
