"""The parts every task shares: file reading and its errors, vocabulary, metrics, run files,
the training loop's resume, the gate panels of `lstmkit inspect`, and the plots."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lstmkit import plots
from lstmkit.data.errors import DataError
from lstmkit.data.tables import read_table, read_text
from lstmkit.data.vocab import PAD, UNK, Vocabulary, words
from lstmkit.files import load_tensor_file, save_tensor_file
from lstmkit.tasks import metrics, runs
from lstmkit.tasks.inspect import gate_panels
from lstmkit.tasks.training import History, fit, seed_everything


# ------------------------------------------------------------------ tables


def write(tmp_path, name, content, mode="w"):
    path = tmp_path / name
    if mode == "wb":
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_csv_with_quotes_keeps_the_line_each_row_starts_on(tmp_path):
    path = write(tmp_path, "a.csv", 'text,label\n"two\nlines",pos\n\nplain,neg\n')
    table = read_table(path)
    assert table.header == ["text", "label"]
    assert table.strings("text") == ["two\nlines", "plain"]
    assert table.lines == [2, 5]


def test_tsv_fields_keep_their_quotes(tmp_path):
    table = read_table(write(tmp_path, "a.tsv", 'sentence\tscore\n"A lone quote\t1\nok"\t0\n'))
    assert table.strings("sentence") == ['"A lone quote', 'ok"']
    np.testing.assert_array_equal(table.numbers("score"), [1.0, 0.0])


@pytest.mark.parametrize("content, line, column, words_in_message", [
    ("a,b\n1,2\n3,x\n", 3, "b", ["expected a number", "'x'"]),
    ("a,b\n1,2\n3,\n", 3, "b", ["empty value"]),
    ("a,b\n1,2\n3,4,5\n", 3, None, ["expected 2", "got 3"]),
    ("a,b\n", None, None, ["no data rows"]),
    ("a,a\n1,2\n", 1, None, ["more than once"]),
])
def test_bad_tables_name_the_line_and_column(tmp_path, content, line, column, words_in_message):
    path = write(tmp_path, "t.csv", content)
    with pytest.raises(DataError) as info:
        read_table(path).numbers("b")
    error = info.value
    assert (error.line, error.column) == (line, column)
    assert str(path) in str(error)
    for word in words_in_message:
        assert word in str(error)


def test_misspelt_column_gets_the_header_and_the_nearest_name(tmp_path):
    table = read_table(write(tmp_path, "t.csv", "text,label\nhi,1\n"))
    with pytest.raises(DataError, match=r"no column 'labl'.*'text', 'label'.*did you mean 'label'"):
        table.strings("labl")


def test_bad_encoding_names_the_line(tmp_path):
    path = write(tmp_path, "t.csv", b"text,label\nok,1\ncaf\xe9 \x85,0\n", mode="wb")    # cp1252 bytes
    with pytest.raises(DataError, match="not valid utf-8") as info:
        read_table(path)
    assert info.value.line == 3
    assert read_table(path, encoding="cp1252").strings("text")[1] == "café …"


def test_missing_empty_and_folder_inputs(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_text(tmp_path / "absent.txt")
    with pytest.raises(DataError, match="is a folder"):
        read_text(tmp_path)
    with pytest.raises(DataError, match="is empty"):
        read_text(write(tmp_path, "e.txt", " \n\n"))


def test_numbers_accept_thousands_separators_but_not_decimal_commas(tmp_path):
    table = read_table(write(tmp_path, "t.tsv", "v\n1,234.5\n-2\n1e3\n"))
    np.testing.assert_array_equal(table.numbers("v"), [1234.5, -2.0, 1000.0])
    with pytest.raises(DataError, match="'1,5'"):
        read_table(write(tmp_path, "u.tsv", "v\n1,5\n")).numbers("v")


# ------------------------------------------------------------------ vocabulary


def test_vocabulary_orders_by_count_then_token_and_round_trips():
    vocab = Vocabulary.build([words("b a b c"), words("c b!")], min_count=1)
    assert vocab.tokens == [PAD, UNK, "b", "c", "!", "a"]
    assert vocab.encode(["c", "zebra"]) == [3, 1]
    again = Vocabulary.from_json(json.loads(json.dumps(vocab.to_json())))
    assert again.tokens == vocab.tokens and again.decode([2, 5]) == ["b", "a"]
    assert Vocabulary.build([["x", "y", "y"]], min_count=2).tokens == [PAD, UNK, "y"]
    assert words("Don't stop!") == ["don't", "stop", "!"]


# ------------------------------------------------------------------ metrics


def test_classification_metrics_match_sklearn():
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    true, predicted = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    predicted[true == 3] = 3           # class 3 well predicted, others at chance
    got = metrics.classification(true, predicted, 4)
    assert got["accuracy"] == pytest.approx(sklearn.accuracy_score(true, predicted))
    assert got["macro_f1"] == pytest.approx(sklearn.f1_score(true, predicted, average="macro"))
    np.testing.assert_array_equal(metrics.confusion_matrix(true, predicted, 4),
                                  sklearn.confusion_matrix(true, predicted, labels=range(4)))


def test_regression_metrics_by_hand():
    train = np.array([1.0, 3.0, 2.0, 6.0])           # naive in-sample MAE = (2 + 1 + 4) / 3
    got = metrics.regression([2.0, 4.0], [3.0, 2.0], train)
    assert got["mae"] == pytest.approx(1.5)
    assert got["rmse"] == pytest.approx(np.sqrt((1 + 4) / 2))
    assert got["mape"] == pytest.approx((0.5 + 0.5) / 2 * 100)
    assert got["mase"] == pytest.approx(1.5 / (7 / 3))
    assert metrics.regression([2.0], [2.0], [1.0, 2.0, 5.0, 4.0], season=2)["mase"] == 0.0


def test_bleu_is_100_for_exact_and_lower_for_a_changed_word():
    pytest.importorskip("sacrebleu")
    refs = ["the cat sat on the mat today", "a dog barked at the mailman"]
    assert metrics.bleu(refs, refs) == pytest.approx(100.0)
    assert metrics.bleu(["the cat sat on a mat today", refs[1]], refs) < 100.0


def test_bits_per_character():
    assert metrics.bits_per_character(np.log(2)) == pytest.approx(1.0)


# ------------------------------------------------------------------ run files


def test_saved_model_round_trips_and_damage_is_refused(tmp_path):
    model = torch.nn.Linear(3, 2)
    runs.save_model(tmp_path, "classify", model, {"labels": ["neg", "pos"]})
    task, config, state = runs.load_model(tmp_path)
    assert task == "classify" and config == {"labels": ["neg", "pos"]}
    torch.testing.assert_close(state["weight"], model.weight.detach(), rtol=0, atol=0)
    raw = bytearray((tmp_path / runs.MODEL_FILE).read_bytes())
    raw[-3] ^= 0xFF
    (tmp_path / runs.MODEL_FILE).write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupted"):
        runs.load_model(tmp_path)
    save_tensor_file(tmp_path / "other.safetensors", {"x": torch.zeros(1)}, "someone.else/1")
    with pytest.raises(ValueError, match="expected lstmkit.task-model/1"):
        runs.load_model(tmp_path / "other.safetensors")
    with pytest.raises(FileNotFoundError, match="no saved model"):
        runs.load_model(tmp_path / "nowhere")


def test_truncated_tensor_file_is_refused(tmp_path):
    path = tmp_path / "t.safetensors"
    save_tensor_file(path, {"x": torch.arange(10.0)}, "fmt/1")
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        load_tensor_file(path, "fmt/1")


# ------------------------------------------------------------------ training loop


def _problem():
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(64, 3)), dtype=torch.float32)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1

    def batches(epoch):
        order = torch.randperm(64, generator=torch.Generator().manual_seed(epoch))
        return [(x[order[k:k + 16]], y[order[k:k + 16]]) for k in range(0, 64, 16)]

    def loss(model, batch):
        return torch.nn.functional.mse_loss(model(batch[0]).squeeze(-1), batch[1])

    def validate(model):
        return loss(model, (x, y)).item(), None

    return batches, loss, validate


def test_resumed_training_equals_uninterrupted_training(tmp_path):
    batches, loss, validate = _problem()
    kwargs = dict(batches=batches, loss=loss, validate=validate, lr=0.05, progress=False)

    seed_everything(0)
    straight = torch.nn.Linear(3, 1)
    history = fit(straight, epochs=4, **kwargs)

    seed_everything(0)
    first = torch.nn.Linear(3, 1)
    fit(first, epochs=2, checkpoint=tmp_path / "ckpt.safetensors", **kwargs)
    second = torch.nn.Linear(3, 1)            # a fresh process would start from other weights
    resumed = fit(second, epochs=4, checkpoint=tmp_path / "ckpt.safetensors", resume=True, log=lambda s: None, **kwargs)

    assert resumed.train_loss == history.train_loss and resumed.best_epoch == history.best_epoch
    for a, b in zip(straight.parameters(), second.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert history.train_loss[-1] < history.train_loss[0]


def test_fit_keeps_the_best_epoch_by_the_metric():
    batches, loss, _ = _problem()
    scores = iter([0.2, 0.9, 0.5])
    seen = []

    def validate(model):
        seen.append(model.weight.detach().clone())
        return 1.0, next(scores)

    model = torch.nn.Linear(3, 1)
    history = fit(model, batches=batches, loss=loss, validate=validate, metric_name="accuracy",
                  higher_is_better=True, epochs=3, lr=0.05, progress=False)
    assert isinstance(history, History) and history.best_epoch == 2
    torch.testing.assert_close(model.weight.detach(), seen[1], rtol=0, atol=0)


def test_fit_refuses_a_diverging_loss():
    def batches(epoch):
        return [None]

    with pytest.raises(FloatingPointError, match="lower learning rate"):
        fit(torch.nn.Linear(1, 1), batches=batches, loss=lambda m, b: m.weight.sum() * float("nan"),
            epochs=1, progress=False)


# ------------------------------------------------------------------ inspect and plots


def test_gate_panels_match_the_first_step_by_hand():
    from lstmkit import nn as lnn

    torch.manual_seed(0)
    layer = lnn.LSTM(3, 6, batch_first=True)
    x = torch.randn(1, 5, 3)
    panels, units = gate_panels(layer, x, units=4)
    assert set(panels) == {"input gate i", "forget gate f", "output gate o", "cell state c"}
    assert all(p.shape == (4, 5) for p in panels.values())
    # step 0 from zero state: gates = sigmoid(W_ih x_0 + b_ih + b_hh), rows i, f, g, o.
    pre = (layer.weight_ih_l0 @ x[0, 0] + layer.bias_ih_l0 + layer.bias_hh_l0).detach().view(4, 6)
    i, f, g = torch.sigmoid(pre[0]), torch.sigmoid(pre[1]), torch.tanh(pre[2])
    np.testing.assert_allclose(panels["forget gate f"][:, 0], f[units].numpy(), rtol=1e-5)
    np.testing.assert_allclose(panels["input gate i"][:, 0], i[units].numpy(), rtol=1e-5)
    np.testing.assert_allclose(panels["cell state c"][:, 0], (i * g)[units].numpy(), rtol=1e-5, atol=1e-7)
    full, _ = gate_panels(layer, x, units=6)
    spread = full["cell state c"].std(axis=1)
    assert np.all(np.diff(spread) <= 1e-7)      # most active unit first
    with pytest.raises(ValueError, match=r"one sequence: expected x of shape \[1, T, 3\]"):
        gate_panels(layer, torch.randn(2, 5, 3))


def test_plots_write_png_files(tmp_path):
    history = History("accuracy", [1.0, 0.5], [1.1, 0.7], [0.5, 0.8], [1e-3, 1e-3], [0.1, 0.1], best_epoch=2)
    plots.learning_curves(history, tmp_path / "curves.png")
    plots.confusion_matrix(np.array([[3, 1], [0, 4]]), ["neg", "pos"], tmp_path / "cm.png")
    plots.series(np.arange(5), {"actual": np.arange(5.0), "model": np.arange(5.0) + 1}, tmp_path / "s.png", "t")
    plots.heatmap(np.random.rand(3, 4), tmp_path / "h.png", "attention", list("abcd"), list("xyz"))
    for name in ("curves.png", "cm.png", "s.png", "h.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gru_gate_panels_match_the_first_step_by_hand():
    from lstmkit import nn as lnn

    torch.manual_seed(1)
    layer = lnn.GRU(2, 3)                       # time-major input [T, 1, I]
    x = torch.randn(4, 1, 2)
    panels, units = gate_panels(layer, x, units=3)
    assert set(panels) == {"reset gate r", "update gate z", "candidate n", "state h"}
    # step 0 from zero state: r, z = sigmoid(W_i x + b_i + b_h); n = tanh(W_in x + b_in + r * b_hn)
    pre_i = (layer.weight_ih_l0 @ x[0, 0] + layer.bias_ih_l0).detach().view(3, 3)
    b_h = layer.bias_hh_l0.detach().view(3, 3)
    r, z = torch.sigmoid(pre_i[0] + b_h[0]), torch.sigmoid(pre_i[1] + b_h[1])
    n = torch.tanh(pre_i[2] + r * b_h[2])
    np.testing.assert_allclose(panels["reset gate r"][:, 0], r[units].numpy(), rtol=1e-5)
    np.testing.assert_allclose(panels["update gate z"][:, 0], z[units].numpy(), rtol=1e-5)
    np.testing.assert_allclose(panels["state h"][:, 0], ((1 - z) * n)[units].numpy(), rtol=1e-5, atol=1e-7)


def test_resume_without_validation_equals_an_uninterrupted_run(tmp_path):
    batches, loss, _ = _problem()
    kwargs = dict(batches=batches, loss=loss, lr=0.05, progress=False)
    seed_everything(0)
    straight = torch.nn.Linear(3, 1)
    fit(straight, epochs=3, **kwargs)
    seed_everything(0)
    fit(torch.nn.Linear(3, 1), epochs=1, checkpoint=tmp_path / "c.safetensors", **kwargs)
    resumed = torch.nn.Linear(3, 1)
    history = fit(resumed, epochs=3, checkpoint=tmp_path / "c.safetensors", resume=True, log=lambda s: None, **kwargs)
    assert history.best_epoch == 3
    for a, b in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_resume_refuses_a_missing_checkpoint_and_another_model(tmp_path):
    batches, loss, _ = _problem()
    kwargs = dict(batches=batches, loss=loss, epochs=1, progress=False)
    with pytest.raises(ValueError, match="nothing to resume"):
        fit(torch.nn.Linear(3, 1), checkpoint=tmp_path / "none.safetensors", resume=True, **kwargs)
    fit(torch.nn.Linear(3, 1), checkpoint=tmp_path / "c.safetensors", **kwargs)
    with pytest.raises(ValueError, match="another model"):
        fit(torch.nn.Sequential(torch.nn.Linear(3, 1)), checkpoint=tmp_path / "c.safetensors", resume=True, **kwargs)
