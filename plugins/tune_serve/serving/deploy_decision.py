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

A deploy's result (`Backend.deploy`, the `serving.deploy_serving` XCom) is built only here,
`result(...)`, with its keys stated once in `DeployResult`.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypedDict

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


def decide(candidate: Mapping[str, Any], serving_path: str | None,
           published: Mapping[int, Mapping[str, Any]]) -> Decision:
    """`candidate`: {run_id, rank, fingerprint, judged_against}; `serving_path`: the stable
    version's SavedModel now (read under the lock); `published`: {version: its provenance}."""
    serving = version_of(serving_path)
    mine = sorted(v for v, p in published.items() if all(p.get(k) == candidate.get(k) for k in IDENTITY))
    if mine:
        version = mine[-1]
        if serving == version:
            why = (f"this run's candidate {candidate.get('rank')} is already v{version}, serving: "
                   "nothing new published")
        else:
            now = f"v{serving} serves now" if serving is not None else "no version serves now"
            why = (f"this run's candidate {candidate.get('rank')} is already v{version} (published by an "
                   f"earlier try); {now}: left as it is")
        return Decision(ALREADY_PUBLISHED, why, version)
    judged = candidate.get("judged_against")
    if not _same_path(judged, serving_path):
        then = f"evaluated against {_named(judged)}" if judged else "evaluated when no version served"
        now = f"v{serving} serves now" if serving is not None else "no version serves now"
        return Decision(REFUSED, f"{then}; {now}: the verdict is stale, nothing published (clear this "
                                 "run's evaluation to judge the candidate against what serves now)")
    return Decision(PUBLISH, f"judged against {_named(serving_path)}, which still serves" if serving_path
                    else "judged when no version served, and none serves")


class DeployResult(TypedDict):
    """What a deploy did (`Backend.deploy`): `action` is one of PUBLISH, ALREADY_PUBLISHED, REFUSED."""

    model_name: str
    action: str
    reason: str
    version: int | None          # the version published, or the candidate's existing one; None when refused
    serving_version: int | None  # the stable version once the deploy is over
    url: str                     # the model's predict URL
    previous_version: int | None  # the stable version a publish replaced (None otherwise)
    prediction: Any              # the smoke test's answer (a publish), else None


def result(model_name: str, action: str, reason: str, *, version: int | None, serving_version: int | None,
           url: str, previous_version: int | None = None, prediction: Any = None) -> DeployResult:
    """The one constructor of a deploy's result."""
    return {"model_name": model_name, "action": action, "reason": reason, "version": version,
            "serving_version": serving_version, "url": url, "previous_version": previous_version,
            "prediction": prediction}


def held(model_name: str, decision: Decision, serving_version: int | None, url: str) -> DeployResult:
    """The result of a decision not to publish (already published, refused): nothing changed."""
    return result(model_name, decision.action, decision.reason, version=decision.version,
                  serving_version=serving_version, url=url)


def published(model_name: str, version: int, previous_version: int | None, url: str,
              prediction: Any) -> DeployResult:
    """The result of a new version rolled out and serving as stable."""
    reason = (f"v{version} replaces v{previous_version}" if previous_version is not None
              else "the first version")
    return result(model_name, PUBLISH, reason, version=version, serving_version=version, url=url,
                  previous_version=previous_version, prediction=prediction)
