"""BoTorch at 4 in flight, for `make bench BENCH=search` (issue 25). Runs in the bench-only
environment `.venv/bench-botorch` (constraints/bench-botorch.txt: torch 2.13.0 CPU, BoTorch
0.18.1), never in an image or the main environments.

    .venv/bench-botorch/bin/python bench/botorch_batch.py FUNCTION METHOD BUDGET SEED [SEED ...]

The protocol of ../shared/probes/search/bench.py, which measured the figures in issue 25: the
unit cube, 8 scrambled Sobol points (seeded), then batches of 4 chosen with no result of the
batch known, until BUDGET evaluations; BoTorch's default `SingleTaskGP` (outcome standardised,
noise fitted) refitted before every batch;

- `kb`: kriging believer: LogEI maximised 4 times in turn, each point conditioned on the
  posterior mean at it (hyperparameters kept), 8 restarts from 256 raw samples;
- `qlogei`: joint qLogEI over the batch of 4 (256 QMC samples, 8 restarts, 256 raw samples).

Prints one JSON line per seed: the simple regret after each evaluation (`regret[n-1]` after n)
and the seconds the seed took. One thread: the machine's 2 cores are shared.
"""
from __future__ import annotations

import json
import sys
import time
import warnings

import torch

torch.set_num_threads(1)
warnings.filterwarnings("ignore")

from botorch.acquisition.analytic import LogExpectedImprovement  # noqa: E402
from botorch.acquisition.logei import qLogExpectedImprovement  # noqa: E402
from botorch.fit import fit_gpytorch_mll  # noqa: E402
from botorch.models import SingleTaskGP  # noqa: E402
from botorch.optim import optimize_acqf  # noqa: E402
from botorch.sampling import SobolQMCNormalSampler  # noqa: E402
from botorch.test_functions import Branin, Hartmann  # noqa: E402
from botorch.utils.sampling import draw_sobol_samples  # noqa: E402
from gpytorch.mlls import ExactMarginalLogLikelihood  # noqa: E402

DTYPE = torch.double
Q, INIT, RESTARTS, RAW = 4, 8, 8, 256
# function -> (BoTorch test function, negated to maximise; its global maximum)
FUNCTIONS = {"branin": (lambda: Branin(negate=True), -0.397887),
             "hartmann6": (lambda: Hartmann(dim=6, negate=True), 3.32237)}


def search(function: str, method: str, budget: int, seed: int) -> list[float]:
    make, optimum = FUNCTIONS[function]
    f = make()
    d = f.dim
    low, high = f.bounds[0].to(DTYPE), f.bounds[1].to(DTYPE)
    cube = torch.stack([torch.zeros(d, dtype=DTYPE), torch.ones(d, dtype=DTYPE)])

    def evaluate(u):
        return f(low + (high - low) * u).unsqueeze(-1)

    torch.manual_seed(seed)
    X = draw_sobol_samples(cube, n=INIT, q=1, seed=seed).squeeze(1).to(DTYPE)
    Y = evaluate(X)
    while len(X) < budget:
        model = SingleTaskGP(X, Y)
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        if method == "qlogei":
            acq = qLogExpectedImprovement(model, best_f=Y.max(), sampler=SobolQMCNormalSampler(torch.Size([256])))
            batch, _ = optimize_acqf(acq, cube, q=Q, num_restarts=RESTARTS, raw_samples=RAW)
        elif method == "kb":
            points, believed, current = [], Y, model
            for _ in range(Q):
                acq = LogExpectedImprovement(current, best_f=believed.max())
                x, _ = optimize_acqf(acq, cube, q=1, num_restarts=RESTARTS, raw_samples=RAW)
                with torch.no_grad():
                    mean = current.posterior(x).mean
                points.append(x)
                believed = torch.cat([believed, mean])
                current = current.condition_on_observations(x, mean)
            batch = torch.cat(points)
        else:
            raise SystemExit(f"unknown method {method!r}: kb or qlogei")
        X = torch.cat([X, batch])
        Y = torch.cat([Y, evaluate(batch)])
    best = torch.cummax(Y[:budget].squeeze(-1), 0).values
    return [float(optimum - b) for b in best]


def main() -> None:
    function, method, budget, seeds = sys.argv[1], sys.argv[2], int(sys.argv[3]), [int(s) for s in sys.argv[4:]]
    for seed in seeds:
        started = time.process_time()
        regret = search(function, method, budget, seed)
        print(json.dumps({"function": function, "method": method, "seed": seed, "regret": regret,
                          "cpu_seconds": round(time.process_time() - started, 2)}), flush=True)


if __name__ == "__main__":
    main()
