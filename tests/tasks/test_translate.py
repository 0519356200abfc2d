"""lstmkit translate: the CLI end to end, bad files, saved runs, determinism, and decoding against oracles."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from lstmkit import cli
from lstmkit import nn as lnn
from lstmkit.data.errors import DataError
from lstmkit.data.pairs import detokenize, read_pairs, tokenize
from lstmkit.tasks import load, runs, translate
from lstmkit.tasks.seq2seq import Seq2Seq

WORDS = {"one": "un", "two": "deux", "three": "trois", "red": "rouge", "cat": "chat", "dog": "chien"}
TINY = dict(epochs=1, hidden=8, embedding=8, beam=2, progress=False, log=lambda *_: None)


def write_pairs(path, n=40, seed=0):
    """n distinct short English-like sentences and their word-for-word 'French'."""
    rng = np.random.default_rng(seed)
    english = list(WORDS)
    seen, lines = set(), []
    while len(lines) < n:
        words = tuple(rng.choice(english, size=rng.integers(1, 5)))
        if words not in seen:
            seen.add(words)
            lines.append(" ".join(words).capitalize() + ".\t" + " ".join(WORDS[w] for w in words).capitalize() + " .")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("translate")
    data = write_pairs(folder / "pairs.tsv")
    return translate.train(data=data, out=folder / "run", seed=3, **TINY), data


def test_cli_end_to_end(tmp_path, capsys):
    data = write_pairs(tmp_path / "pairs.tsv")
    out = tmp_path / "run"
    code = cli.main(["translate", "--data", str(data), "--out", str(out), "--epochs", "1", "--hidden", "8",
                     "--embedding", "8", "--beam", "2", "--quiet"])
    assert code == 0
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "metrics.json", "report.md", "learning_curves.png", "attention.png"} <= names
    assert "checkpoint.safetensors" not in names
    m = json.loads((out / "metrics.json").read_text())
    assert {"bleu", "bleu_greedy", "bleu_beam", "perplexity", "baseline", "data", "split", "seconds",
            "config"} <= set(m)
    assert m["bleu"] == m["bleu_beam"]
    assert set(m["baseline"]) == {"copy_source", "word_by_word"}
    assert m["baseline"]["word_by_word"]["bleu"] == pytest.approx(100)   # the toy language is word for word
    report = (out / "report.md").read_text()
    assert "baseline" in report and "## Examples" in report
    capsys.readouterr()
    assert cli.main(["predict", str(out), "One cat.", "Red dog."]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2


BAD_FILES = {
    "missing target": ("One.\tUn .\nTwo.\nThree.\tTrois .\n", 2, "target"),
    "empty source": ("One.\tUn .\n \tDeux .\n", 2, "source"),
    "empty target": ("One.\tUn .\nTwo.\tDeux .\nCat.\t  \n", 3, "target"),
    "header only": ("source\ttarget\n", 1, None),
    "too few pairs": ("One.\tUn .\nOne.\tUne .\nTwo.\tDeux .\n", None, None),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_file_is_a_data_error_naming_line_and_column(tmp_path, case, capsys):
    text, line, column = BAD_FILES[case]
    path = tmp_path / "bad.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as err:
        translate.train(data=path, out=tmp_path / "run", **TINY)
    assert err.value.path == str(path) and err.value.line == line and err.value.column == column
    assert cli.main(["translate", "--data", str(path), "--out", str(tmp_path / "run2"), "--quiet"]) == 2
    assert str(path) in capsys.readouterr().err


def test_missing_empty_and_badly_encoded_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        translate.train(data=tmp_path / "absent.tsv", **TINY)
    (tmp_path / "empty.tsv").write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="empty"):
        translate.train(data=tmp_path / "empty.tsv", **TINY)
    (tmp_path / "latin.tsv").write_bytes("One.\tUn .\nCoffee.\tCaf\xe9 .\n".encode("latin-1"))
    with pytest.raises(DataError) as err:
        translate.train(data=tmp_path / "latin.tsv", **TINY)
    assert err.value.line == 2
    good = write_pairs(tmp_path / "good.tsv")
    with pytest.raises(DataError) as err:
        translate.train(data=good, test=tmp_path / "latin.tsv", **TINY)
    assert err.value.path == str(tmp_path / "latin.tsv")


def test_header_names_the_columns(tmp_path):
    path = tmp_path / "named.tsv"
    path.write_text("id\ttarget\tsource\n1\tUn .\tOne.\n\n2\tDeux .\tTwo.\n", encoding="utf-8")
    pairs = read_pairs(path)
    assert pairs.sources == ["One.", "Two."] and pairs.targets == ["Un .", "Deux ."] and pairs.lines == [2, 4]


def test_tokens_and_back():
    assert tokenize("Il l'a vu, non ?") == ["Il", "l'a", "vu", ",", "non", "?"]
    assert tokenize("Go!", lowercase=True) == ["go", "!"]
    assert detokenize(["il", "l'a", "vu", ",", "non", "?"]) == "il l'a vu, non?"


def test_saved_run_translates_like_the_trained_model(trained, tmp_path):
    result, _ = trained
    _, config, _ = runs.load_model(result.run_dir)
    live = translate.Translator(result.model, config)
    saved = load(result.run_dir)
    assert isinstance(saved, translate.Translator)
    sentences = ["One red cat.", "Two dogs.", "Three."]
    for beam in (1, 3):
        assert saved.translate(sentences, beam=beam) == live.translate(sentences, beam=beam)
    source = torch.tensor([saved.source_vocab.encode(tokenize("one red cat .", True))])
    assert saved.model.greedy(source, torch.tensor([4]), 8)[0] == result.model.greedy(source, torch.tensor([4]), 8)[0]
    file = tmp_path / "in.txt"
    file.write_text("One red cat.\n\nThree.\n", encoding="utf-8")
    assert saved.predict_lines([], file=str(file)) == live.translate(["One red cat.", "Three."])


def test_attention_and_inspect_shapes(trained):
    result, _ = trained
    translator = load(result.run_dir)
    tokens, attention = translator.translate_with_attention("One red cat.")
    assert attention.shape == (len(tokens), 4)
    np.testing.assert_allclose(attention.sum(1), 1.0, rtol=1e-5)
    layer, x, labels = translator.inspect_input("One red cat.")
    assert isinstance(layer, lnn.LSTM) and tuple(x.shape) == (1, 4, 8) and labels == ["one", "red", "cat", "."]
    with pytest.raises(ValueError, match="empty"):
        translator.translate(["  "])
    picture = result.run_dir / "inspect_test.png"
    assert cli.main(["inspect", str(result.run_dir), "--input", "One red cat.", "--output", str(picture)]) == 0
    assert picture.stat().st_size > 0


def test_same_seed_same_metrics(trained):
    result, data = trained
    again = translate.train(data=data, out=result.run_dir.parent / "again", seed=3, **TINY)
    strip = lambda m: {k: v for k, v in m.items() if k != "seconds"}  # noqa: E731
    assert strip(again.metrics) == strip(result.metrics)


def test_gru_additive_attention_scheduled_sampling_and_a_test_file(tmp_path):
    data, test = write_pairs(tmp_path / "train.tsv", 40, 1), write_pairs(tmp_path / "test.tsv", 6, 2)
    result = translate.train(data=data, test=test, out=tmp_path / "run", cell="gru", attention="additive",
                             teacher_forcing=0.5, layers=2, **TINY)
    assert result.metrics["data"]["test_pairs"] == 6
    layer, _, _ = load(result.run_dir).inspect_input("one cat")
    assert isinstance(layer, lnn.GRU)


def test_word_by_word_dictionary_by_hand():
    pairs = [(["the", "cat"], ["le", "chat"]), (["the", "dog"], ["le", "chien"]), (["a", "cat"], ["un", "chat"])]
    # Dice(cat, chat) = 2*2/(2+2) = 1; Dice(the, le) = 1; Dice(a, un) = 1; Dice(dog, chien) = 1 > Dice(dog, le) = 2/3.
    assert translate.word_by_word_dictionary(pairs) == {"the": "le", "cat": "chat", "dog": "chien", "a": "un"}


@pytest.mark.parametrize("penalty", [0.0, 1.0])
def test_beam_search_finds_the_best_sequence_by_exhaustive_search(penalty):
    """With a beam wider than every prefix, beam search must return the exact best-scoring sentence."""
    torch.manual_seed(0)
    config = dict(source_size=7, target_size=6, bos=2, eos=3, embedding=5, hidden=4, layers=1, cell="vanilla",
                  bidirectional=True, attention="general", dropout=0.0)
    model = Seq2Seq(config).eval()
    with torch.no_grad():
        model.out.bias.zero_()
        model.out.bias[3] = -1.5                       # make </s> less likely so longer sentences compete
    source, steps = torch.tensor([[4, 5, 6]]), 3
    best, best_ids = -np.inf, None
    for n in range(steps):
        for body in itertools.product([k for k in range(6) if k != 3], repeat=n):
            ids = [2, *body, 3]
            with torch.no_grad():
                logp = torch.log_softmax(model(source, torch.tensor([3]), torch.tensor([ids[:-1]])), -1)[0]
            score = float(sum(logp[t, ids[t + 1]] for t in range(len(ids) - 1))) / (n + 1) ** penalty
            if score > best:
                best, best_ids = score, list(body)
    ids, attention = model.beam_search(source, 3, beam=200, max_steps=steps, length_penalty=penalty)
    assert ids == best_ids
    assert attention.shape == (len(ids), 3)
    greedy_ids, _ = model.greedy(source, torch.tensor([3]), steps)
    assert model.beam_search(source, 3, beam=1, max_steps=steps, length_penalty=0.0)[0] == greedy_ids[0]
