"""The model config file: TF Serving's `ModelConfig.version_labels`, as JSON.

    {"version_labels": {"stable": 3, "canary": 4}}

Default location `{base_path}/../{model_name}.config.json`, i.e. next to the model's base
path, so the base path itself holds only version directories (as TF Serving expects).
Writers replace the file atomically (write a temporary file, then rename it over).
No TensorFlow here: cheap to import.
"""
from __future__ import annotations

import json
from pathlib import Path


def default_config_path(base_path: Path, model_name: str) -> Path:
    return Path(base_path).parent / f"{model_name}.config.json"


def read_version_labels(path: Path) -> dict[str, int]:
    """Labels from the config file; `{}` when there is no file. Raises ValueError if malformed."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return {}
    try:
        labels = json.loads(text).get("version_labels", {})
        return {str(label): int(version) for label, version in labels.items()}
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: expected {{\"version_labels\": {{label: version}}}}: {exc}") from exc
