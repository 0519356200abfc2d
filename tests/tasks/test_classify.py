"""lstmkit classify: the run it writes, its predictor, its errors on bad files, and its figures
checked against scikit-learn."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmkit import nn as lnn
from lstmkit.cli import main
from lstmkit.data.errors import DataError
from lstmkit.data.sentiment import build_sentiment_tsv, sentiment_sentences
from lstmkit.data.splits import label_order, stratified_split
from lstmkit.tasks import classify, load

TINY = dict(epochs=2, hidden=8, embedding=8, batch_size=8, progress=False)
UCI = Path("/work/shared/data/uci-sentiment-labelled-sentences")
GOOD = ["good", "great", "lovely", "fine", "superb"]
BAD = ["bad", "awful", "poor", "dull", "terrible"]


def write_tsv(path, rows, header=("text", "label"), encoding="utf-8"):
    lines = ["\t".join(header)] + ["\t".join(row) for row in rows]
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def sentiment_rows(n, seed=0):
    """n short texts: a good or bad word in a neutral frame, labelled pos / neg."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        label = "pos" if k % 2 == 0 else "neg"
        word = rng.choice(GOOD if label == "pos" else BAD)
        rows.append((f"the film was {word} , really {word}", label))
    return rows


@pytest.fixture
def data(tmp_path):
    return write_tsv(tmp_path / "train.tsv", sentiment_rows(48))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One small run with a separate test file, shared by the read-only checks."""
    folder = tmp_path_factory.mktemp("classify")
    train_file = write_tsv(folder / "train.tsv", sentiment_rows(48))
    test_file = write_tsv(folder / "test.tsv", sentiment_rows(20, seed=1))
    result = classify.train(str(train_file), str(test_file), out=folder / "run", seed=0, **TINY)
    return result, test_file


def test_train_writes_the_run_folder(run):
    result, _ = run
    names = {p.name for p in result.files}
    assert {"model.safetensors", "metrics.json", "report.md", "confusion_matrix.png",
            "learning_curves.png"} <= names
    assert "checkpoint.safetensors" not in names
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert {"accuracy", "macro_f1", "confusion_matrix", "labels", "baseline", "data", "split", "seconds",
            "config"} <= set(metrics)
    assert metrics["labels"] == ["neg", "pos"]
    assert set(metrics["baseline"]) == {"majority", "bag_of_words_logreg"}
    assert metrics["baseline"]["majority"]["accuracy"] == pytest.approx(0.5)
    assert metrics["data"]["test"]["texts"] == 20
    report = (result.run_dir / "report.md").read_text()
    assert "majority class" in report and "bag-of-words" in report and ("beats" in report or "does not beat" in report)


def test_figures_match_sklearn(run):
    """accuracy, macro-F1 and the confusion matrix, recomputed by scikit-learn from the saved run's predictions."""
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    result, test_file = run
    texts = [line.split("\t")[0] for line in test_file.read_text().splitlines()[1:]]
    truth = [line.split("\t")[1] for line in test_file.read_text().splitlines()[1:]]
    predicted = load(result.run_dir).predict(texts)
    assert result.metrics["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(truth, predicted))
    assert result.metrics["macro_f1"] == pytest.approx(sklearn_metrics.f1_score(truth, predicted, average="macro"))
    matrix = sklearn_metrics.confusion_matrix(truth, predicted, labels=["neg", "pos"])
    assert result.metrics["confusion_matrix"] == matrix.tolist()


def test_saved_run_predicts_what_the_trained_model_predicts(run):
    result, _ = run
    texts = ["a great film", "the film was awful", "words never seen before", "good " * 30]
    predictor = load(result.run_dir)
    ids, lengths = classify.pad(classify.encode(texts, predictor.vocab, predictor.max_length), dtype=torch.int64)
    with torch.no_grad():
        expected = torch.softmax(result.model.cpu().eval()(ids, lengths), -1).numpy()
    np.testing.assert_array_equal(predictor.predict_proba(texts), expected)
    assert predictor.predict(texts) == [predictor.labels[k] for k in expected.argmax(1)]
    assert predictor.labels == ["neg", "pos"]


def test_predict_lines_from_inputs_and_files(run, tmp_path):
    result, _ = run
    predictor = load(result.run_dir / "model.safetensors")
    (tmp_path / "texts.txt").write_text("a good film\n\nan awful film\n")
    (tmp_path / "texts.csv").write_text('other,text\nx,"a lovely film, truly"\n')
    lines = predictor.predict_lines(["so dull"], file=str(tmp_path / "texts.txt"))
    assert [line.split("\t")[2] for line in lines] == ["so dull", "a good film", "an awful film"]
    for line in lines:
        label, probability, _ = line.split("\t")
        assert label in ("neg", "pos") and 0.5 <= float(probability) <= 1
    assert predictor.predict_lines([], file=str(tmp_path / "texts.csv"))[0].endswith("\ta lovely film, truly")


def test_inspect_input_gives_the_embeddings_the_lstm_reads(run):
    result, _ = run
    layer, x, steps = load(result.run_dir).inspect_input("A great, great film!")
    assert isinstance(layer, lnn.LSTM)
    assert steps == ["a", "great", ",", "great", "film", "!"]
    assert x.shape == (1, 6, 8)
    torch.testing.assert_close(x[0, 1], x[0, 3])           # the same word, the same embedding
    output, _ = layer(x)
    assert output.shape == (1, 6, 16)                        # bidirectional by default


def test_cli_trains_and_predicts(data, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["classify", "--data", str(data), "--out", str(out), "--epochs", "1", "--hidden", "8",
                 "--embedding", "8", "--cell", "gru", "--no-bidirectional", "--quiet"])
    assert code == 0
    assert "baseline majority" in capsys.readouterr().out
    assert main(["predict", str(out), "a superb film", "so terrible"]) == 0
    lines = capsys.readouterr().out.strip().split("\n")
    assert len(lines) == 2 and lines[0].split("\t")[0] in ("neg", "pos") and lines[1].endswith("\tso terrible")
    assert main(["inspect", str(out), "--input", "a superb film", "--output", str(tmp_path / "gates.png")]) == 0
    assert (tmp_path / "gates.png").stat().st_size > 0


def test_same_seed_same_metrics(data, tmp_path):
    first = classify.train(str(data), out=tmp_path / "a", seed=5, **TINY).metrics
    second = classify.train(str(data), out=tmp_path / "b", seed=5, **TINY).metrics
    first.pop("seconds"), second.pop("seconds")
    assert first == second
    assert "stratified" in first["split"] and "Validation" in first["split"]


def test_split_is_stratified_and_labels_keep_their_names(tmp_path):
    rows = [(f"text number {k}", "1 star" if k < 30 else "5 stars") for k in range(90)]
    result = classify.train(str(write_tsv(tmp_path / "stars.tsv", rows)), out=tmp_path / "run", epochs=1, hidden=4,
                            embedding=4, progress=False, test_fraction=0.2, val_fraction=0.25)
    data = result.metrics["data"]
    assert data["test"]["texts"] == 18                       # 20% of 30 and of 60
    assert data["validation"]["texts"] == 18                 # 25% of 24 and of 48
    assert data["train"]["texts"] == 54
    assert np.sum(result.metrics["confusion_matrix"], axis=1).tolist() == [6, 12]
    assert result.metrics["labels"] == ["1 star", "5 stars"]


def test_stratified_split_by_hand():
    labels = ["a"] * 10 + ["b"] * 5 + ["c"]
    kept, held = stratified_split(labels, 0.2, np.random.default_rng(0))
    assert sorted(np.concatenate([kept, held]).tolist()) == list(range(16))
    assert sorted(labels[k] for k in held) == ["a", "a", "b"]   # 2 of 10, 1 of 5, never the lone "c"


def test_label_order_is_numeric_when_labels_are_numbers():
    assert label_order(["10", "2", "1"]) == ["1", "2", "10"]
    assert label_order(["pos", "neg"]) == ["neg", "pos"]


def test_long_texts_are_cut_and_unknown_words_map_to_unk(run):
    predictor = load(run[0].run_dir)
    (encoded,) = classify.encode(["good " * 500 + "zzzunseen"], predictor.vocab, predictor.max_length)
    assert len(encoded) == 100
    (encoded,) = classify.encode(["zzzunseen qqqunseen"], predictor.vocab, 100)
    assert encoded.tolist() == [predictor.vocab.ids["<unk>"]] * 2


def bad_files(tmp_path):
    """(name, train file, test file or None, expected line, expected column) per way a file can be wrong."""
    good = sentiment_rows(20)
    cases = [
        ("missing file", tmp_path / "absent.tsv", None, None, None),
        ("misspelt column", write_tsv(tmp_path / "col.tsv", good, header=("txt", "label")), None, 1, None),
        ("empty text", write_tsv(tmp_path / "empty.tsv", good[:5] + [("  ", "pos")] + good[5:]), None, 7, "text"),
        ("empty label", write_tsv(tmp_path / "nolabel.tsv", good[:3] + [("ok", " ")] + good[3:]), None, 5, "label"),
        ("bad encoding", write_tsv(tmp_path / "enc.tsv", good[:2] + [("caf\xe9 ok", "pos")] + good[2:],
                                   encoding="latin-1"), None, 4, None),
        ("wrong field count", tmp_path / "fields.tsv", None, 3, None),
        ("single class", write_tsv(tmp_path / "one.tsv", [(t, "pos") for t, _ in good]), None, 2, "label"),
        ("unseen test label", write_tsv(tmp_path / "train.tsv", good),
         write_tsv(tmp_path / "test.tsv", good[:3] + [("so so", "neutral")]), 5, "label"),
        ("too few rows", write_tsv(tmp_path / "two.tsv", good[:2]), None, None, "label"),
    ]
    (tmp_path / "fields.tsv").write_text("text\tlabel\nfine\tpos\nno label here\n")
    return cases


@pytest.mark.parametrize("case", range(9))
def test_bad_files_name_file_line_and_column(tmp_path, capsys, case):
    name, train_file, test_file, line, column = bad_files(tmp_path)[case]
    with pytest.raises(DataError) as error:
        classify.train(str(train_file), test_file and str(test_file), out=tmp_path / "run", **TINY)
    culprit = test_file if name == "unseen test label" else train_file
    assert error.value.path == str(culprit), name
    assert (error.value.line, error.value.column) == (line, column), name
    argv = ["classify", "--data", str(train_file), "--out", str(tmp_path / "cli"), "--epochs", "1", "--quiet"]
    assert main(argv + (["--test", str(test_file)] if test_file else [])) == 2
    assert str(culprit) in capsys.readouterr().err


def test_embedded_dataset():
    texts, labels, sources = sentiment_sentences()
    assert len(texts) == 3000 and all(t and t == t.strip() and "\t" not in t for t in texts)
    assert {(lab, src): sum(1 for a, b in zip(labels, sources) if (a, b) == (lab, src))
            for lab in ("negative", "positive") for src in ("amazon", "imdb", "yelp")} == \
        {(lab, src): 500 for lab in ("negative", "positive") for src in ("amazon", "imdb", "yelp")}
    assert not any("\x80" <= c <= "\x9f" for t in texts for c in t)


@pytest.mark.skipif(not UCI.is_dir(), reason="the shared UCI sentiment files are not on this machine")
def test_embedded_dataset_rebuilds_from_the_uci_files():
    from importlib import resources

    embedded = resources.files("lstmkit.data").joinpath("sentiment.tsv").read_text(encoding="utf-8")
    assert build_sentiment_tsv(UCI) == embedded


def test_without_scikit_learn_the_report_says_the_baseline_was_skipped(data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.linear_model", None)      # makes the import fail
    result = classify.train(str(data), out=tmp_path / "run", **TINY)
    assert result.metrics["baseline"]["bag_of_words_logreg"] == {"skipped": "scikit-learn is not installed"}
    assert "skipped: scikit-learn is not installed" in (result.run_dir / "report.md").read_text()
