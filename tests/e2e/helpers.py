from __future__ import annotations

import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def tree(root: str | Path) -> dict[str, int]:
    """Every file under root with its size: a cheap fingerprint of stored state."""
    root = Path(root)
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()} \
        if root.exists() else {}


def assert_succeeded(client, run_id: str, state: str | None = None) -> None:
    """The run succeeded; else the assertion lists every task that did not (id, map index, state).
    `state`: the run's final state when the caller already waited for it (else it is read)."""
    failed = [(t["task_id"], t["map_index"], t["state"]) for t in client.task_instances(run_id)
              if t["state"] not in ("success", "skipped")]
    assert (state if state is not None else client.run_state(run_id)) == "success", failed


def intervals_overlap(task_instances: list[dict]) -> bool:
    spans = sorted((ti["start_date"], ti["end_date"]) for ti in task_instances)
    return any(later_start < earlier_end for (_, earlier_end), (later_start, _) in zip(spans, spans[1:]))


def savedmodel_predict(model_dir: str, instance: dict) -> list[float]:
    """The SavedModel's own output for one raw instance, computed in the trainer environment."""
    code = (
        "import json, sys, tensorflow as tf\n"
        "m = tf.saved_model.load(sys.argv[1]); f = m.signatures['serving_default']\n"
        "inst = json.loads(sys.argv[2]); keys = f._arg_keywords\n"  # the SignatureDef's input keys
        "feeds = {k: tf.constant([inst[k]], dtype=t.dtype) for k, t in zip(keys, f.inputs)}\n"
        "out = f(**feeds); print(json.dumps([float(v) for v in list(out.values())[0].numpy().ravel()]))\n"
    )
    out = subprocess.run([str(REPO / ".venv" / "trainer" / "bin" / "python"), "-c", code, model_dir,
                          json.dumps(instance)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
