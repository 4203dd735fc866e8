"""Publish, already published, or refuse: the one decision `deploy_serving` takes under the
model's deploy lock (the local flock, the Kubernetes Lease), before anything is published.

A candidate's verdict (TFMA) was judged against the version serving when it was evaluated
(`judged_against`: that version's SavedModel path, None when nothing served). By the time the
candidate deploys, another run may have published a newer version, or this very candidate may
already be a version (a retried or cleared deploy, a cleared run). The rules, first match wins:

| what the versions' provenance and the serving version say                      | decision            |
|---------------------------------------------------------------------------------|---------------------|
| a version was published from this run's candidate (same run, rank, fingerprint) | `already_published` |
| the version serving now is not the one the verdict was judged against           | `refused`           |
| otherwise                                                                       | `publish`           |

Why refuse rather than re-evaluate: re-judging means a TFMA pass on this run's eval data against
the new baseline, minutes of a pod while the deploy lock (which every deployment of the model
waits on) is held; and a verdict is the user's record of why a model shipped, which a deploy
task should not silently replace. The refusal names both versions and how to re-judge: clear
the run's `evaluation` group, which evaluates against what serves then (docs/contracts.md).

An already published candidate is never published again: when it still serves, the retry is a
no-op that reports it; when another version serves now, it is left as it is (the record says
which). Pure: the backends read the versions and the serving path, this decides.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

PUBLISH: Final = "publish"
ALREADY_PUBLISHED: Final = "already_published"
REFUSED: Final = "refused"
# What makes a published version this run's candidate (besides the SavedModel's fingerprint)
IDENTITY: Final = ("run_id", "rank", "fingerprint")


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str
    version: int | None = None  # the candidate's existing version (already_published)


def version_of(path: str | None) -> int | None:
    """The version number a serving path ends with (`…/{model_name}/{version}`), or None."""
    if not path:
        return None
    last = path.rstrip("/").rsplit("/", 1)[-1]
    return int(last) if last.isdigit() else None


def _same_path(a: str | None, b: str | None) -> bool:
    return (a or "").rstrip("/") == (b or "").rstrip("/")


def _named(path: str | None) -> str:
    version = version_of(path)
    return f"v{version}" if version is not None else (path or "nothing")


def decide(candidate: Mapping[str, Any], serving_path: str | None, published: Mapping[int, Mapping[str, Any]]) -> Decision:
    """`candidate`: {run_id, rank, fingerprint, judged_against}; `serving_path`: the stable
    version's SavedModel now (read under the lock); `published`: {version: its provenance}."""
    serving = version_of(serving_path)
    mine = sorted(v for v, p in published.items() if all(p.get(k) == candidate.get(k) for k in IDENTITY))
    if mine:
        version = mine[-1]
        if serving == version:
            why = f"this run's candidate {candidate.get('rank')} is already v{version}, serving: nothing new published"
        else:
            now = f"v{serving} serves now" if serving is not None else "no version serves now"
            why = (f"this run's candidate {candidate.get('rank')} is already v{version} (published by an earlier "
                   f"try); {now}: left as it is")
        return Decision(ALREADY_PUBLISHED, why, version)
    judged = candidate.get("judged_against")
    if not _same_path(judged, serving_path):
        then = f"evaluated against {_named(judged)}" if judged else "evaluated when no version served"
        now = f"v{serving} serves now" if serving is not None else "no version serves now"
        return Decision(REFUSED, f"{then}; {now}: the verdict is stale, nothing published "
                                 f"(clear this run's evaluation to judge the candidate against what serves now)")
    return Decision(PUBLISH, f"judged against {_named(serving_path)}, which still serves" if serving_path
                    else "judged when no version served, and none serves")
