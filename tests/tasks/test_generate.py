"""lstmkit generate: the character language model task, end to end on tiny texts."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lstmkit import nn as lnn
from lstmkit.cli import main
from lstmkit.data.errors import DataError
from lstmkit.data.shakespeare import tiny_shakespeare_excerpt
from lstmkit.tasks import generate

TINY = dict(epochs=2, hidden=8, embedding=8, seq_length=12, batch_size=4, sample_length=30, progress=False,
            log=lambda line: None)
TEXT = "".join(f"the cat sat on mat {k % 7}.\nA dog ran; it saw {k % 5} cats!\n" for k in range(40))


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small trained run shared by the tests that only read it."""
    folder = tmp_path_factory.mktemp("generate")
    path = folder / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return generate.train(data=path, out=folder / "run", **TINY)


def test_run_folder_has_model_metrics_report_and_pictures(trained):
    run = trained.run_dir
    names = {p.name for p in trained.files}
    assert {"model.safetensors", "metrics.json", "report.md", "learning_curves.png", "surprisal.png",
            "samples.txt"} <= names
    assert "checkpoint.safetensors" not in names
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"bpc", "nats_per_char", "perplexity", "baseline", "data", "split", "seconds", "config",
            "training"} <= set(metrics)
    assert len(metrics["training"]["validation_bpc_per_epoch"]) == 2
    assert set(metrics["baseline"]) == {"unigram", "bigram"}
    assert metrics["bpc"] == pytest.approx(metrics["nats_per_char"] / math.log(2))
    n_valid = len(TEXT) - int(len(TEXT) * 0.9)
    assert metrics["data"]["validation_chars"] == n_valid and metrics["data"]["scored_chars"] == n_valid - 1
    assert "last 10%" in metrics["split"]
    report = (run / "report.md").read_text()
    assert "bits per character" in report.lower() and "bigram" in report
    assert ("does **not** beat" in report) == (metrics["bpc"] >= metrics["baseline"]["bigram"]["bpc"])
    assert (run / "samples.txt").read_text().count("=== temperature") == 3


def test_saved_run_scores_and_samples_like_the_trained_model(trained):
    saved = generate.load(trained.run_dir)
    live = generate.Predictor(trained.model, saved.config)
    text = "the dog sat on a cat.\n"
    assert saved.bpc(text) == live.bpc(text)
    assert saved.predict_lines([text, "A cat"]) == live.predict_lines([text, "A cat"])
    assert saved.sample(40, prime="the ", seed=3) == live.sample(40, prime="the ", seed=3)
    # bpc of the validation span through the predictor = the figure in metrics.json
    valid = TEXT[int(len(TEXT) * 0.9):]
    assert saved.bpc(valid) == pytest.approx(trained.metrics["bpc"], rel=1e-9)


def test_same_seed_same_metrics(tmp_path, text_file):
    a = generate.train(data=text_file, out=tmp_path / "a", seed=5, **TINY).metrics
    b = generate.train(data=text_file, out=tmp_path / "b", seed=5, **TINY).metrics
    strip = lambda m: {k: v for k, v in m.items() if k != "seconds"}  # noqa: E731
    assert strip(a) == strip(b)


def test_resumed_run_matches_an_uninterrupted_one(tmp_path, text_file, monkeypatch):
    settings = {**TINY, "epochs": 3}
    whole = generate.train(data=text_file, out=tmp_path / "whole", **settings).metrics
    calls, scorer = [], generate.char_nats

    def interrupted(*args, **kwargs):   # validation of epoch 2 fails: the checkpoint holds epoch 1
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return scorer(*args, **kwargs)

    monkeypatch.setattr(generate, "char_nats", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate.train(data=text_file, out=tmp_path / "cut", **settings)
    assert (tmp_path / "cut" / "checkpoint.safetensors").exists()
    monkeypatch.setattr(generate, "char_nats", scorer)
    resumed = generate.train(data=text_file, out=tmp_path / "cut", resume=True, **settings).metrics
    assert resumed["bpc"] == whole["bpc"] and resumed["training"] == whole["training"]
    assert not (tmp_path / "cut" / "checkpoint.safetensors").exists()


def test_sample_contract(trained):
    p = generate.load(trained.run_dir)
    out = p.sample(length=25, temperature=0.8, prime="the", seed=1)
    assert out.startswith("the") and len(out) == 28 and set(out) <= set(p.chars)
    assert len(p.sample(length=25, seed=1)) == 25
    assert p.sample(30, seed=7) == p.sample(30, seed=7)
    # top_k=1 is greedy decoding: the argmax at every step, whatever the temperature or seed
    greedy = p.sample(10, top_k=1, prime="the ", seed=0)
    assert greedy == p.sample(10, top_k=1, temperature=5.0, prime="the ", seed=99)
    logits, _ = p.model(p.encode("the ")[None])
    assert greedy[4] == p.chars[int(logits[0, -1].argmax())]
    with pytest.raises(ValueError, match="'Z'"):
        p.sample(10, prime="Zed")
    with pytest.raises(ValueError, match="temperature"):
        p.sample(10, temperature=0)


def test_inspect_input_is_what_the_first_layer_reads(trained):
    p = generate.load(trained.run_dir)
    layer, x, labels = p.inspect_input("a cat\n")
    assert isinstance(layer, lnn.LSTM) and layer is p.model.rnn
    assert x.shape == (1, 6, layer.input_size)
    assert labels == ["a", "␣", "c", "a", "t", "\\n"]
    torch.testing.assert_close(x[0], p.model.embedding(p.encode("a cat\n")))


def test_count_models_against_hand_computation():
    train = np.array([0, 1, 0, 1, 1, 2])     # V = 4 (id 3 never trained)
    ids = np.array([1, 0, 3, 1])
    V = 4
    unigram = generate.count_model_bits(train, ids, V, order=0)
    counts = {0: 2, 1: 3, 2: 1, 3: 0}
    expected = [-math.log2((counts[c] + 1) / (6 + V)) for c in (0, 3, 1)]
    np.testing.assert_allclose(unigram, expected)
    # bigram pairs in train: 01, 10, 01, 11, 12 -> n(1 0)=1, n(0 3)=0, n(3 1)=0; n(1 .)=3, n(0 .)=2, n(3 .)=0
    bigram = generate.count_model_bits(train, ids, V, order=1)
    np.testing.assert_allclose(bigram, [-math.log2(2 / 7), -math.log2(1 / 6), -math.log2(1 / 4)])


def test_char_nats_in_chunks_equals_one_pass(trained, monkeypatch):
    model = trained.model
    ids = generate.Predictor(model, generate.load(trained.run_dir).config).encode(TEXT[:200])
    with torch.no_grad():
        logits, _ = model(ids[None])
        whole = F.cross_entropy(logits[0, :-1], ids[1:], reduction="none").double().numpy()
    monkeypatch.setattr(generate, "EVAL_CHUNK", 17)
    np.testing.assert_allclose(generate.char_nats(model, ids), whole, rtol=1e-5, atol=1e-6)


def test_stream_batches_are_consecutive_chunks_shifted_by_one():
    ids = torch.arange(50)
    chunks = list(generate.stream_batches(ids, streams=3, seq_length=4, offset=2))
    assert [first for *_, first in chunks] == [True] + [False] * (len(chunks) - 1)
    rows = torch.cat([x for x, _, _ in chunks], dim=1)
    targets = torch.cat([y for _, y, _ in chunks], dim=1)
    per_stream = (50 - 2 - 1) // 3
    assert rows.shape == (3, per_stream)
    torch.testing.assert_close(rows[1], torch.arange(2 + per_stream, 2 + 2 * per_stream))
    torch.testing.assert_close(targets, rows + 1)


def test_gru_cell_and_given_test_file(tmp_path, text_file):
    held_out = tmp_path / "held_out.txt"
    held_out.write_text("A cat ran on the mat.\n", encoding="utf-8")
    result = generate.train(data=text_file, test=held_out, out=tmp_path / "g", cell="gru", **{**TINY, "epochs": 1})
    assert isinstance(result.model.rnn, lnn.GRU)
    assert result.metrics["data"]["validation_chars"] == len("A cat ran on the mat.\n")
    assert result.metrics["data"]["train_chars"] == len(TEXT)
    assert generate.load(result.run_dir).sample(5, seed=0) == generate.Predictor(result.model, result.model.config).sample(5, seed=0)


def test_embedded_excerpt_is_tiny_shakespeare_cut_at_a_line():
    text = tiny_shakespeare_excerpt()
    assert 100_000 <= len(text) <= 200_000 and text.startswith("First Citizen:") and text.endswith("\n")


@pytest.mark.parametrize("case", ["missing", "encoding", "empty", "too_short", "test_too_short"])
def test_bad_files_name_file_and_line(tmp_path, case, capsys):
    good = tmp_path / "good.txt"
    good.write_text(TEXT, encoding="utf-8")
    bad = tmp_path / "bad.txt"
    args = {"data": bad}
    if case == "encoding":
        bad.write_bytes(b"first line\nsecond \xff line\n")
        line = 2
    elif case == "empty":
        bad.write_text("  \n\n", encoding="utf-8")
        line = None
    elif case == "too_short":
        bad.write_text("to be\nor not\n", encoding="utf-8")
        line = 2
    elif case == "test_too_short":
        bad.write_text("x", encoding="utf-8")
        args = {"data": good, "test": bad}
        line = 1
    else:
        line = None
    with pytest.raises(DataError) as error:
        generate.train(out=tmp_path / "run", **args, **TINY)
    assert error.value.path == str(bad) and error.value.line == line
    assert str(bad) in str(error.value)
    argv = ["generate", "--out", str(tmp_path / "cli"), "--epochs", "1", "--hidden", "8", "--quiet"]
    for key, value in args.items():
        argv += [f"--{key}", str(value)]
    assert main(argv) == 2
    assert str(bad) in capsys.readouterr().err


def test_predict_file_with_an_unseen_character_names_line_and_column(trained, tmp_path):
    path = tmp_path / "new.txt"
    path.write_text("the cat\nthe Zebra\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 2.*'Z' \(column 5\)") as error:
        generate.load(trained.run_dir).predict_lines([], file=str(path))
    assert error.value.line == 2


def test_refuses_bidirectional_and_bad_options(text_file, tmp_path):
    with pytest.raises(ValueError, match="bidirectional"):
        generate.train(data=text_file, out=tmp_path / "r", bidirectional=True, **TINY)
    with pytest.raises(ValueError, match="val-fraction"):
        generate.train(data=text_file, out=tmp_path / "r", val_fraction=1.5, **TINY)


def test_cli_trains_samples_and_predicts(tmp_path, text_file, capsys):
    run = tmp_path / "cli_run"
    assert main(["generate", "--data", str(text_file), "--out", str(run), "--epochs", "1", "--hidden", "8",
                 "--embedding", "8", "--seq-length", "12", "--batch-size", "4", "--sample-length", "20",
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "bpc" in out and "baseline bigram" in out
    assert main(["sample", str(run), "--length", "15", "--prime", "the", "--seed", "2"]) == 0
    assert capsys.readouterr().out.rstrip("\n") == generate.load(run).sample(15, prime="the", seed=2)
    assert main(["predict", str(run), "the cat sat"]) == 0
    assert "bits/char" in capsys.readouterr().out
    assert main(["sample", str(run), "--prime", "Q!"]) == 2
    assert "'Q'" in capsys.readouterr().err
    assert main(["sample", str(run), "--temperature", "0"]) == 2


def test_characters_met_only_in_validation_are_refused_as_input(tmp_path, text_file):
    held_out = tmp_path / "held_out.txt"
    held_out.write_text("the cat sat on a Zebra.\n" * 3, encoding="utf-8")     # 'Z' is not in TEXT
    result = generate.train(data=text_file, test=held_out, out=tmp_path / "run", **TINY)
    predictor = generate.load(result.run_dir)
    assert "Z" in predictor.chars                   # scored in validation, so it has a softmax slot
    with pytest.raises(ValueError, match="'Z'.*never occur"):
        predictor.sample(length=5, prime="Zebra")
    with pytest.raises(ValueError, match="'Z'.*never occur"):
        predictor.bpc("a Zebra")
