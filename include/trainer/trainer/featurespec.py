"""The feature spec on storage: `load` and `save` a `FeatureSpec`, parse `prepare --feature-spec`.

The spec itself (`FeatureSpec`, `DeclaredSpec`, the name rules) is the model SDK's,
`trainer.sdk.featurespec`; its names are re-exported here, so `from trainer.featurespec import
FeatureSpec` (what user models wrote before the SDK) keeps working.
"""
from __future__ import annotations

import json
from typing import Any

from trainer import storage
from trainer.errors import BadInput
from trainer.sdk.featurespec import (  # noqa: F401 (re-exported)
    NAME_RULE,
    STAT_KEYS,
    TOP_LEVEL_KEYS,
    DeclaredSpec,
    FeatureSpec,
    check_name,
    derived_keys,
)


def load(uri: str) -> FeatureSpec:
    """The complete spec `prepare` wrote at `uri` (JSON or YAML), validated."""
    return FeatureSpec.from_dict(read_mapping(uri), source=uri)


def save(spec: FeatureSpec, uri: str) -> None:
    """Write `spec` as JSON through a temporary name (a reader never sees half a file)."""
    storage.write_text(uri, json.dumps(spec.to_dict(), indent=2) + "\n")


def parse_declared(value: str) -> DeclaredSpec:
    """`prepare --feature-spec`: inline JSON (starts with '{') or the URI of a JSON/YAML file."""
    if value.lstrip().startswith("{"):
        try:
            data = json.loads(value)
        except json.JSONDecodeError as exc:
            raise BadInput("--feature-spec", f"inline JSON does not parse: {exc}") from None
        return DeclaredSpec.from_dict(data)
    return DeclaredSpec.from_dict(read_mapping(value, field_name="--feature-spec"), source="--feature-spec")


def parse_mapping(text: str, field_name: str) -> Any:
    """Parse a JSON or YAML document (JSON first: it is the common case and YAML's superset
    parser gives worse messages); unparsable text raises BadInput naming the field."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BadInput(field_name, f"neither valid JSON nor YAML: {str(exc).splitlines()[0]}") from None


def read_mapping(uri: str, field_name: str | None = None) -> Any:
    """Read a JSON or YAML document; missing or unparsable files raise BadInput."""
    field_name = field_name or uri
    if not storage.exists(uri):
        raise BadInput(field_name, f"file not found: {uri}")
    return parse_mapping(storage.read_text(uri), field_name)
