"""lstmkit sequence: UCR/UEA files, the digits default, errors with file/line/column, saved runs, baselines."""

import json

import numpy as np
import pytest
import torch

from lstmkit.cli import main
from lstmkit.data.errors import DataError
from lstmkit.data.sequence_files import parse_values, read_series
from lstmkit.tasks import load, sequence
from lstmkit.tasks.classifier import pad, predict_classes

TINY = dict(epochs=2, hidden=8, progress=False, log=lambda *a: None)


def _rows(n_per_class=8, length=12, seed=0):
    """Two classes: rising and falling ramps with noise -> list of (label, values)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(-1, 1, length)
    rows = []
    for k in range(n_per_class):
        rows.append(("up", ramp + 0.2 * rng.standard_normal(length)))
        rows.append(("down", -ramp + 0.2 * rng.standard_normal(length)))
    return rows


def write_tsv(path, rows, ragged=False):
    lines = []
    for k, (label, values) in enumerate(rows):
        values = values[:len(values) - (k % 3)] if ragged else values   # shorter rows end in blanks
        fields = [label, *(f"{v:.5f}" for v in values)]
        lines.append("\t".join(fields + ([""] * (k % 3) if ragged else [])))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_ts(path, n_per_class=6, seed=0):
    """Two-dimensional, variable-length .ts file with labels a/b."""
    rng = np.random.default_rng(seed)
    lines = ["# tiny", "@problemName tiny", "@univariate false", "@dimensions 2", "@equalLength false",
             "@classLabel true a b", "@data"]
    for k in range(2 * n_per_class):
        label = "ab"[k % 2]
        t = 5 + k % 4
        sign = 1 if label == "a" else -1
        dims = [sign * np.arange(t) / t + 0.1 * rng.standard_normal(t), rng.standard_normal(t)]
        lines.append(":".join(",".join(f"{v:.4f}" for v in d) for d in dims) + f":{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def files(tmp_path):
    return (write_tsv(tmp_path / "train.tsv", _rows(seed=0)), write_tsv(tmp_path / "test.tsv", _rows(4, seed=1)))


def test_cli_end_to_end_writes_the_run(files, tmp_path, capsys):
    train_file, test_file = files
    out = tmp_path / "run"
    code = main(["sequence", "--data", str(train_file), "--test", str(test_file), "--out", str(out),
                 "--epochs", "2", "--hidden", "8", "--quiet"])
    assert code == 0
    for name in ("model.safetensors", "metrics.json", "report.md", "learning_curves.png", "confusion_matrix.png"):
        assert (out / name).stat().st_size > 0, name
    assert not (out / "checkpoint.safetensors").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "confusion_matrix", "baseline", "data", "split", "seconds", "config"):
        assert key in metrics, key
    assert set(metrics["baseline"]) == {"majority", "1nn_euclidean"}
    assert np.asarray(metrics["confusion_matrix"]).sum() == 8
    report = (out / "report.md").read_text()
    assert "1nn_euclidean" in report and ("beats" in report or "does **not** beat" in report)
    assert "test: accuracy" in capsys.readouterr().out

    assert main(["predict", str(out), "0,1,2,3,4,5", "5,4,3,2,1,0"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(line.split("\t")[0] in ("up", "down") for line in lines)


def test_ts_multivariate_variable_length_split(tmp_path):
    data = write_ts(tmp_path / "tiny.ts")
    read = read_series(data)
    assert read.n_features == 2 and sorted({len(s) for s in read.series}) == [5, 6, 7, 8]
    result = sequence.train(data=data, out=tmp_path / "run", test_fraction=0.34, **TINY)
    assert result.metrics["data"]["features"] == 2
    assert result.metrics["data"]["test_series"] == 4          # round(0.34 * 6) = 2 per class
    assert "stratified" in result.metrics["split"] and "seed 0" in result.metrics["split"]


def test_ragged_tsv_rows_end_in_blanks(tmp_path):
    path = write_tsv(tmp_path / "ragged.tsv", _rows(3), ragged=True)
    lengths = [len(s) for s in read_series(path).series]
    assert lengths == [12 - (k % 3) for k in range(6)]


def test_default_digits_split(tmp_path):
    result = sequence.train(out=tmp_path / "run", epochs=1, hidden=8, progress=False, log=lambda *a: None)
    d = result.metrics["data"]
    assert (d["train_series"], d["test_series"], d["features"], d["max_length"]) == (1347, 450, 8, 8)
    assert result.metrics["baseline"]["1nn_euclidean"]["accuracy"] > 0.9


@pytest.mark.parametrize("name, text, line, column", [
    ("bad.tsv", "a\t1\t2\nb\t3\tx\n", 2, "field 3"),
    ("labelonly.tsv", "a\t1\t2\nb\n", 2, None),
    ("labelonly_blank.csv", "a,1,2\nb,,\n", 2, None),
    ("hole.tsv", "a\t1\t\t3\nb\t1\t2\t3\n", 1, "field 3"),
    ("single.tsv", "a\t1\t2\na\t3\t4\n", None, None),
    ("dims.ts", "@classLabel true a b\n@data\n1,2:3,4:a\n1,2:b\n", 4, None),
    ("nonnum.ts", "@classLabel true a b\n@data\n1,2:3,4:a\n1,2:3,zz:b\n", 4, "dimension 2 value 2"),
    ("empty.tsv", "", None, None),
    ("nodata.ts", "@problemName x\n@data\n", None, None),
])
def test_bad_files_name_file_line_and_column(tmp_path, name, text, line, column):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError) as info:
        sequence.train(data=path, out=tmp_path / "run", **TINY)
    error = info.value
    assert error.path == str(path) and name in str(error)
    assert error.line == line and error.column == column


def test_missing_file_and_unknown_test_class(tmp_path, files):
    with pytest.raises(DataError, match="no such file"):
        sequence.train(data=tmp_path / "nope.tsv", out=tmp_path / "run", **TINY)
    other = tmp_path / "other.tsv"
    other.write_text("up\t1\t2\t3\nsideways\t1\t2\t3\n")
    with pytest.raises(DataError) as info:
        sequence.train(data=files[0], test=other, out=tmp_path / "run", **TINY)
    assert info.value.line == 2 and "sideways" in str(info.value)


def test_bad_file_through_cli_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.tsv"
    path.write_text("a\t1\t2\nb\t3\tx\n")
    assert main(["sequence", "--data", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "bad.tsv, line 2, column 'field 3'" in err


def test_saved_run_predicts_what_the_model_predicts(files, tmp_path):
    result = sequence.train(data=files[0], test=files[1], out=tmp_path / "run", **TINY)
    predictor = load(result.run_dir)
    series = read_series(files[1]).series
    norm = result.metrics["config"]["normalization"]
    x, lengths = pad(sequence.apply_normalization(series, norm))
    _, expected = predict_classes(result.model, x, lengths)
    assert np.array_equal(predictor.predict_proba(series), expected)
    assert predictor.predict(series) == [predictor.labels[k] for k in expected.argmax(1)]
    lines = predictor.predict_lines([], file=str(files[1]))
    assert len(lines) == 8 and lines[0].endswith(f"{files[1]}:1")
    layer, x1, steps = predictor.inspect_input("1,2,3,4")
    assert tuple(x1.shape) == (1, 4, 1) and steps == ["0", "1", "2", "3"] and layer is predictor.model.rnn


def test_same_seed_same_metrics(files, tmp_path):
    a = sequence.train(data=files[0], test=files[1], out=tmp_path / "a", seed=3, **TINY).metrics
    b = sequence.train(data=files[0], test=files[1], out=tmp_path / "b", seed=3, **TINY).metrics
    for key in ("accuracy", "macro_f1", "confusion_matrix", "baseline", "training"):
        assert a[key] == b[key], key


def test_nearest_neighbour_against_sklearn():
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(0)
    train, test = rng.standard_normal((40, 15)), rng.standard_normal((25, 15))
    labels = rng.integers(0, 3, 40)
    expected = KNeighborsClassifier(n_neighbors=1, algorithm="brute").fit(train, labels).predict(test)
    assert np.array_equal(sequence.nearest_neighbour(train, labels, test, chunk=7), expected)


def test_run_1nn_figure_against_sklearn(files, tmp_path):
    """The 1-NN baseline in metrics.json, recomputed independently from the files and the normaliser."""
    from sklearn.metrics import accuracy_score
    from sklearn.neighbors import KNeighborsClassifier

    result = sequence.train(data=files[0], test=files[1], out=tmp_path / "run", **TINY)
    train, test = read_series(files[0]), read_series(files[1])
    mean, std = np.asarray(result.metrics["config"]["normalization"]["mean"]), \
        np.asarray(result.metrics["config"]["normalization"]["std"])
    flat = lambda s: np.stack([((x - mean) / std).ravel() for x in s.series])
    nn1 = KNeighborsClassifier(n_neighbors=1, algorithm="brute").fit(flat(train), train.labels)
    expected = accuracy_score(test.labels, nn1.predict(flat(test)))
    assert result.metrics["baseline"]["1nn_euclidean"]["accuracy"] == pytest.approx(expected)
    all_steps = np.concatenate(train.series)
    assert mean == pytest.approx(all_steps.mean(0)) and std == pytest.approx(all_steps.std(0))


def test_parse_values_and_series_normalisation():
    assert parse_values("1,2,3:4,5,6").tolist() == [[1, 4], [2, 5], [3, 6]]
    with pytest.raises(DataError, match="dimension 1 value 2"):
        parse_values("1,x,3")
    z = sequence.apply_normalization([np.array([[1.0], [2.0], [3.0]])], {"mode": "series"})[0]
    assert z.ravel() == pytest.approx(np.array([-1.0, 0.0, 1.0]) / np.std([1, 2, 3]))
    assert torch.is_tensor(pad([z])[0])
