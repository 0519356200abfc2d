"""lstmkit speech: WAV folders, labels, the FSDD split, MFCC frames, errors naming the file, saved runs."""

import json

import numpy as np
import pytest

from lstmkit.cli import main
from lstmkit.data import audio
from lstmkit.data.errors import DataError
from lstmkit.tasks import load, speech
from lstmkit.tasks.classifier import predict_classes

soundfile = pytest.importorskip("soundfile")
pytest.importorskip("librosa")

RATE = 8000
TINY = dict(epochs=2, hidden=8, n_mfcc=8, progress=False, log=lambda *a: None)
TONES = {"low": 300.0, "high": 1800.0}


def tone(freq, seconds, rate=RATE, seed=0):
    t = np.arange(int(seconds * rate)) / rate
    noise = 0.02 * np.random.default_rng(seed).standard_normal(len(t))
    return (0.5 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def write_fsdd_folder(folder, takes=7, rate_of=lambda label, k: RATE):
    """FSDD-style names {label}_{speaker}_{index}.wav: 2 labels x 1 speaker x `takes` takes."""
    folder.mkdir(parents=True, exist_ok=True)
    for label, freq in TONES.items():
        for k in range(takes):
            rate = rate_of(label, k)
            soundfile.write(folder / f"{label}_spk_{k}.wav", tone(freq, 0.15 + 0.02 * k, rate, seed=k), rate)
    return folder


@pytest.fixture
def fsdd(tmp_path):
    return write_fsdd_folder(tmp_path / "wavs")


def test_cli_end_to_end_with_the_fsdd_split(fsdd, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["speech", "--data", str(fsdd), "--out", str(out), "--epochs", "2", "--hidden", "8",
                 "--n-mfcc", "8", "--quiet"])
    assert code == 0
    for name in ("model.safetensors", "metrics.json", "report.md", "learning_curves.png", "confusion_matrix.png",
                 "mfcc_example.png"):
        assert (out / name).stat().st_size > 0, name
    assert not (out / "checkpoint.safetensors").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "confusion_matrix", "baseline", "data", "split", "seconds", "config"):
        assert key in metrics, key
    assert set(metrics["baseline"]) == {"majority", "logistic_pooled_mfcc"}
    assert (metrics["data"]["train_clips"], metrics["data"]["test_clips"]) == (4, 10)   # takes 0-4 are test
    assert "official split" in metrics["split"]
    capsys.readouterr()

    wav = fsdd / "low_spk_0.wav"
    assert main(["predict", str(out), str(wav)]) == 0
    label, probability, path = capsys.readouterr().out.strip().split("\t")
    assert label in TONES and 0 <= float(probability) <= 1 and path == str(wav)


def test_labels_from_sub_folders_and_random_split(tmp_path):
    root = tmp_path / "words"
    for label, freq in TONES.items():
        (root / label).mkdir(parents=True)
        for k in range(5):
            soundfile.write(root / label / f"take{k}.wav", tone(freq, 0.2, seed=k), RATE)
    clips = audio.find_clips(root)
    assert {c.label for c in clips} == set(TONES)
    result = speech.train(data=root, out=tmp_path / "run", test_fraction=0.4, **TINY)
    assert result.metrics["data"]["test_clips"] == 4 and "random" in result.metrics["split"]


def test_other_sample_rate_is_resampled_and_reported(tmp_path):
    folder = write_fsdd_folder(tmp_path / "wavs", rate_of=lambda label, k: 16000 if (label, k) == ("low", 6) else RATE)
    result = speech.train(data=folder, out=tmp_path / "run", **TINY)
    assert result.metrics["data"]["resampled_clips"] == 1 and result.metrics["data"]["sample_rate"] == RATE
    assert "resampled to 8000 Hz" in (result.run_dir / "report.md").read_text()


def test_embedded_default_subset(tmp_path):
    result = speech.train(out=tmp_path / "run", epochs=1, hidden=8, progress=False, log=lambda *a: None)
    d = result.metrics["data"]
    assert (d["train_clips"], d["test_clips"], d["classes"], d["sample_rate"]) == (180, 60, 10, 8000)


def test_errors_name_the_file(tmp_path, fsdd):
    with pytest.raises(DataError, match="no such folder") as info:
        speech.train(data=tmp_path / "missing", out=tmp_path / "run", **TINY)
    assert info.value.path == str(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .wav files"):
        speech.train(data=tmp_path / "empty", out=tmp_path / "run", **TINY)
    corrupt = fsdd / "low_spk_9.wav"
    corrupt.write_bytes(b"RIFF not really a wave file")
    with pytest.raises(DataError, match="cannot be read as audio") as info:
        speech.train(data=fsdd, out=tmp_path / "run", **TINY)
    assert info.value.path == str(corrupt)
    single = tmp_path / "single"
    single.mkdir()
    for k in range(6):
        soundfile.write(single / f"yes_spk_{k}.wav", tone(400, 0.2, seed=k), RATE)
    with pytest.raises(DataError, match="only one class"):
        speech.train(data=single, out=tmp_path / "run", **TINY)


def test_bad_folder_through_cli_exits_2(tmp_path, capsys):
    assert main(["speech", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "missing: no such folder" in capsys.readouterr().err


def test_saved_run_predicts_what_the_model_predicts(fsdd, tmp_path):
    result = speech.train(data=fsdd, out=tmp_path / "run", **TINY)
    predictor = load(result.run_dir)
    paths = sorted(fsdd.glob("*.wav"))
    features = result.metrics["config"]["features"]
    x, lengths = speech.prepare([speech.clip_features(p, features)[0] for p in paths], features)
    _, expected = predict_classes(result.model, x, lengths)
    assert np.array_equal(predictor.predict_proba(paths), expected)
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(str(p.relative_to(tmp_path)) for p in paths[:3]) + "\n")
    assert len(predictor.predict_lines([], file=str(listing))) == 3
    assert len(predictor.predict_lines([], file=str(fsdd))) == len(paths)
    layer, frames, times = predictor.inspect_input(str(paths[0]))
    assert frames.shape[0] == 1 and frames.shape[2] == 8 and len(times) == frames.shape[1]
    assert times[:2] == ["0.00s", "0.01s"] and layer is predictor.model.rnn


def test_accuracy_recomputed_from_the_saved_run(fsdd, tmp_path):
    """An independent path: the saved predictor on the test takes (0-4) against their file-name labels."""
    result = speech.train(data=fsdd, out=tmp_path / "run", **TINY)
    test_paths = [p for p in sorted(fsdd.glob("*.wav")) if int(p.stem.rsplit("_", 1)[1]) <= 4]
    predicted = load(result.run_dir).predict(test_paths)
    truth = [p.stem.split("_")[0] for p in test_paths]
    assert result.metrics["accuracy"] == pytest.approx(np.mean([a == b for a, b in zip(predicted, truth)]))


def test_same_seed_same_metrics(fsdd, tmp_path):
    a = speech.train(data=fsdd, out=tmp_path / "a", seed=5, **TINY).metrics
    b = speech.train(data=fsdd, out=tmp_path / "b", seed=5, **TINY).metrics
    for key in ("accuracy", "macro_f1", "confusion_matrix", "baseline", "training"):
        assert a[key] == b[key], key


def test_mfcc_frame_count_by_hand():
    samples = tone(500, 0.25)                                  # 2000 samples
    frames = audio.mfcc(samples, RATE, n_mfcc=13, window_ms=25, hop_ms=10)
    assert frames.shape == (1 + 2000 // 80, 13)                # centred frames every 80 samples
    assert audio.frame_sizes(RATE, 25, 10) == (200, 80, 256)
