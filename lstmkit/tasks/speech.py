"""Recognise spoken words with an LSTM over MFCC frames, from a folder of WAV files.

Labels come from sub-folders (`yes/take1.wav`) or from the file-name prefix before the first '_'
(`7_jackson_32.wav` -> "7", the Free Spoken Digit Dataset's naming); --label-from picks, and by
default sub-folders are used when the WAVs sit in them. Default data: an embedded 240-clip subset of
FSDD (3 speakers x 10 digits x 8 takes, CC BY-SA 4.0).

Without --test, FSDD-named folders get the dataset's official split (takes 0-4 are test, the rest
training; --split fsdd), other folders a seeded stratified split (--split random). Every clip is
read at the training set's commonest sample rate (others are resampled, and the report says how
many), turned into MFCC frames (librosa; --n-mfcc, --window-ms, --hop-ms), cropped to the
--crop-percentile of the training lengths, and standardised per coefficient with statistics fitted
on the training clips. The LSTM reads the frames with their true lengths. Baselines: the majority
class and a logistic regression on each clip's mean and standard deviation of the MFCCs.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from .. import plots
from ..data import audio
from ..data.errors import DataError
from ..data.splits import label_order, stratified_split
from ..data.tables import read_text
from . import common, runs, training
from .classifier import (SequenceClassifier, fit_classifier, majority_baseline, model_name, pad, predict_classes,
                         write_classification_outputs, write_classifier_report)
from .metrics import classification

TASK = "speech"
SPLITS = ("auto", "fsdd", "random")
N_MELS = 40


def add_arguments(parser) -> None:
    common.add_training_arguments(
        parser, epochs=30, hidden=64,
        data_help="folder of WAV files labelled by sub-folder or name prefix (default: the embedded FSDD subset)",
        test_help="folder of test WAV files labelled the same way (default: a split of --data, see --split)",
        data_metavar="DIR")
    own = parser.add_argument_group("speech options")
    own.add_argument("--label-from", choices=audio.LABEL_SOURCES, default="auto",
                     help="label = the WAV's sub-folder, or its file-name prefix before the first '_' "
                          "(default auto: folder when the WAVs sit in sub-folders, else name)")
    own.add_argument("--split", choices=SPLITS, default="auto",
                     help="without --test: fsdd = FSDD's official split (takes 0-4 test), random = a seeded "
                          "stratified split (default auto: fsdd when every name is {label}_{speaker}_{index}.wav)")
    own.add_argument("--test-fraction", type=float, default=0.2,
                     help="share of each class held out for testing with --split random (default 0.2)")
    own.add_argument("--val-fraction", type=float, default=0.0,
                     help="share of the training clips held out to pick the best epoch; 0 keeps the last epoch "
                          "(default 0: the embedded set has only 6 training takes per speaker and digit; "
                          "0.1 suits larger folders)")
    own.add_argument("--n-mfcc", type=int, default=20, help="MFCC coefficients per frame (default 20)")
    own.add_argument("--window-ms", type=float, default=25.0, help="analysis window in ms (default 25)")
    own.add_argument("--hop-ms", type=float, default=10.0, help="frame step in ms (default 10)")
    own.add_argument("--crop-percentile", type=float, default=99.0,
                     help="crop clips to this percentile of the training lengths in frames (default 99)")
    own.add_argument("--batch-size", type=int, default=32, help="clips per batch (default 32)")
    own.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 0.003)")
    own.add_argument("--dropout", type=float, default=0.1, help="dropout before the output layer (default 0.1)")


# ---------------------------------------------------------------- features

def clip_features(path, features: dict) -> tuple[np.ndarray, bool]:
    """(MFCC frames [T, n_mfcc] of one WAV, resampled?) under the feature settings `features`."""
    samples, rate, resampled = audio.read_wav(path, features["sample_rate"])
    frames = audio.mfcc(samples, rate, features["n_mfcc"], features["window_ms"], features["hop_ms"], N_MELS)
    return frames, resampled


def prepare(frames: list[np.ndarray], features: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop to max_frames, standardise with the training statistics, pad: -> ([B, T, n_mfcc], lengths [B])."""
    mean, std = np.asarray(features["mean"]), np.asarray(features["std"])
    return pad([((f[:features["max_frames"]] - mean) / std).astype(np.float32) for f in frames])


def pooled(frames: list[np.ndarray], features: dict) -> np.ndarray:
    """Each clip's standardised frames summarised as [mean, std] per coefficient: [N, 2 * n_mfcc]."""
    mean, std = np.asarray(features["mean"]), np.asarray(features["std"])
    out = []
    for f in frames:
        z = (f[:features["max_frames"]] - mean) / std
        out.append(np.concatenate([z.mean(0), z.std(0)]))
    return np.stack(out)


def _read_all(clips: list[audio.Clip], features: dict) -> tuple[list[np.ndarray], int]:
    frames, resampled = [], 0
    for clip in clips:
        f, r = clip_features(clip.path, features)
        frames.append(f)
        resampled += r
    return frames, resampled


# ---------------------------------------------------------------- training

def _split(clips, test, label_from, split, test_fraction, rng) -> tuple[list, list, str]:
    """(training clips, test clips, the split in words)."""
    if test is not None:
        held = audio.find_clips(test, label_from)
        return clips, held, (f"the given folders: {len(clips)} training clips from --data, "
                             f"{len(held)} test clips from --test")
    if split not in SPLITS:
        raise ValueError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    if split == "auto":
        split = "fsdd" if audio.is_fsdd(clips) else "random"
    if split == "fsdd":
        for c in clips:
            if not audio.FSDD_NAME.match(c.path.stem):
                raise DataError(c.path, "--split fsdd needs FSDD names {label}_{speaker}_{index}.wav; "
                                        "use --split random or give --test")
        train_clips = [c for c in clips if not audio.fsdd_is_test(c)]
        test_clips = [c for c in clips if audio.fsdd_is_test(c)]
        if not train_clips or not test_clips:
            raise DataError(clips[0].path.parent, f"the FSDD split (takes 0-4 test) leaves {len(train_clips)} "
                                                  f"training and {len(test_clips)} test clips; use --split random")
        return train_clips, test_clips, (f"FSDD's official split: takes 0-4 of each speaker and digit are test "
                                         f"({len(test_clips)} clips), the rest training ({len(train_clips)} clips); "
                                         "the same speakers are in both parts (speaker-dependent)")
    kept, held_out = stratified_split(np.array([c.label for c in clips]), test_fraction, rng)
    if not len(held_out):
        raise ValueError(f"--test-fraction {test_fraction} holds out no clips; give a larger fraction or --test")
    return ([clips[k] for k in kept], [clips[k] for k in held_out],
            f"seeded stratified random split: {round(100 * test_fraction)}% of each class held out for testing, "
            f"{len(kept)} training / {len(held_out)} test clips")


def train(data=None, test=None, out=None, *, seed: int = 0, epochs: int = 30, hidden: int = 64, layers: int = 1,
          cell: str = "vanilla", bidirectional: bool = False, device: str = "auto", resume: bool = False,
          progress: bool = True, log=print, label_from: str = "auto", split: str = "auto",
          test_fraction: float = 0.2, val_fraction: float = 0.0, n_mfcc: int = 20, window_ms: float = 25.0,
          hop_ms: float = 10.0, crop_percentile: float = 99.0, batch_size: int = 32, lr: float = 3e-3,
          dropout: float = 0.1) -> runs.TaskResult:
    """Train an LSTM word recogniser on MFCC frames; returns the TaskResult (run folder, metrics, model)."""
    common.check_positive(epochs=epochs, hidden=hidden, layers=layers, batch_size=batch_size, n_mfcc=n_mfcc)
    if n_mfcc > N_MELS:
        raise ValueError(f"--n-mfcc can be at most {N_MELS} (the mel bands the MFCCs are taken from), got {n_mfcc}")
    if not (window_ms > 0 and hop_ms > 0):
        raise ValueError(f"--window-ms and --hop-ms must be positive, got {window_ms} and {hop_ms}")
    if not 0 < crop_percentile <= 100:
        raise ValueError(f"--crop-percentile must be in (0, 100], got {crop_percentile}")
    with common.Timer() as timer:
        rng = training.seed_everything(seed)
        dev = training.resolve_device(device)
        folder = audio.embedded_speech_folder() if data is None else Path(data)
        clips = audio.find_clips(folder, label_from)
        train_clips, test_clips, split_text = _split(clips, test, label_from, split, test_fraction, rng)
        names = label_order([c.label for c in train_clips])
        if len(names) < 2:
            raise DataError(folder, f"only one class ({names[0]!r}) among {len(train_clips)} training clips; "
                                    "recognition needs at least two labels")
        index = {name: k for k, name in enumerate(names)}
        for c in test_clips:
            if c.label not in index:
                raise DataError(c.path, f"label {c.label!r} does not occur in the training clips "
                                        f"(labels: {', '.join(names)})")

        rates = Counter(_sample_rate(c.path) for c in train_clips)
        features = {"sample_rate": rates.most_common(1)[0][0], "n_mfcc": n_mfcc, "window_ms": window_ms,
                    "hop_ms": hop_ms}
        log(f"speech: MFCC features of {len(train_clips)} training and {len(test_clips)} test clips "
            f"at {features['sample_rate']} Hz")
        train_frames, resampled_train = _read_all(train_clips, features)
        test_frames, resampled_test = _read_all(test_clips, features)
        if resampled_train + resampled_test:
            log(f"speech: {resampled_train + resampled_test} clips had another sample rate and were resampled to "
                f"{features['sample_rate']} Hz")
        lengths = np.array([len(f) for f in train_frames])
        features["max_frames"] = int(math.ceil(np.percentile(lengths, crop_percentile)))
        steps = np.concatenate([f[:features["max_frames"]] for f in train_frames])
        std = steps.std(0)
        features.update(mean=steps.mean(0).tolist(), std=np.where(std > 0, std, 1.0).tolist())

        y_all = np.array([index[c.label] for c in train_clips])
        y_test = np.array([index[c.label] for c in test_clips])
        fit_idx, val_idx = stratified_split(y_all, val_fraction, rng)
        x_fit, l_fit = prepare([train_frames[k] for k in fit_idx], features)
        val = None
        if len(val_idx):
            x_val, l_val = prepare([train_frames[k] for k in val_idx], features)
            val = (x_val, l_val, torch.as_tensor(y_all[val_idx]))

        config = {"n_classes": len(names), "n_features": n_mfcc, "hidden": hidden, "layers": layers, "cell": cell,
                  "bidirectional": bidirectional, "dropout": dropout}
        model = SequenceClassifier(config)
        run_dir = runs.make_run_dir(TASK, out)
        checkpoint = run_dir / "checkpoint.safetensors"
        history = fit_classifier(model, x_fit, l_fit, torch.as_tensor(y_all[fit_idx]), val, epochs=epochs,
                                 batch_size=batch_size, lr=lr, seed=seed, device=dev, checkpoint=checkpoint,
                                 resume=resume, progress=progress, log=log, desc=TASK)

        x_test, l_test = prepare(test_frames, features)
        predicted, _ = predict_classes(model, x_test, l_test, device=dev)
        figures = write_classification_outputs(run_dir, y_test, predicted, names,
                                               f"speech {model_name(cell)}: confusion (test)")
        baselines = {"majority": majority_baseline(y_all, y_test, len(names))}
        pooled_note = _pooled_baseline(baselines, pooled(train_frames, features), y_all,
                                       pooled(test_frames, features), y_test, len(names), seed)

        saved = {"model": config, "labels": names, "features": features,
                 "train": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
                           "val_fraction": val_fraction, "best_epoch": history.best_epoch}}
        runs.save_model(run_dir, TASK, model, saved)
        checkpoint.unlink(missing_ok=True)
        plots.learning_curves(history, run_dir / "learning_curves.png", title=f"speech {model_name(cell)}")
        _draw_example(run_dir, test_frames[0], test_clips[0], features)
    seconds = [len(f) * features["hop_ms"] / 1000 for f in train_frames + test_frames]
    metrics = {
        "accuracy": figures["accuracy"], "macro_f1": figures["macro_f1"],
        "confusion_matrix": figures["confusion_matrix"], "labels": names,
        "baseline": baselines,
        "data": {"source": "embedded FSDD subset (lstmkit/data/speech)" if data is None else str(folder),
                 "test_source": None if test is None else str(test), "train_clips": len(train_clips),
                 "fit_clips": int(len(fit_idx)), "validation_clips": int(len(val_idx)), "test_clips": len(test_clips),
                 "classes": len(names), "sample_rate": features["sample_rate"],
                 "resampled_clips": resampled_train + resampled_test,
                 "shortest_seconds": round(min(seconds), 3), "longest_seconds": round(max(seconds), 3),
                 "max_frames": features["max_frames"]},
        "split": split_text + (f"; {len(val_idx)} training clips (stratified) held out for validation"
                               if len(val_idx) else "; no validation part: the last epoch is kept"),
        "features": (f"{n_mfcc} MFCCs (librosa, {N_MELS} mel bands), {window_ms:g} ms window, {hop_ms:g} ms hop, "
                     f"cropped to {features['max_frames']} frames (the {crop_percentile:g}th percentile of training "
                     f"lengths), standardised per coefficient with training statistics"),
        "training": {"best_epoch": history.best_epoch, "epochs_run": len(history.train_loss)},
        "seconds": round(timer.seconds, 2), "config": saved,
    }
    runs.write_metrics(run_dir, metrics)
    _write_report(run_dir, metrics, cell, pooled_note)
    return runs.TaskResult(TASK, run_dir, metrics, model, history)


def _sample_rate(path) -> int:
    import soundfile

    try:
        return soundfile.info(str(path)).samplerate
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise DataError(path, f"cannot be read as audio (corrupt or not a WAV file): {exc}") from None


def _pooled_baseline(baselines: dict, train_x, train_y, test_x, test_y, n_classes: int, seed: int) -> str:
    """Add a logistic regression on pooled MFCCs when scikit-learn is present; returns a note for the report."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        return "The pooled-MFCC logistic regression baseline was skipped: scikit-learn is not installed."
    model = LogisticRegression(max_iter=2000, random_state=seed).fit(train_x, train_y)
    baselines["logistic_pooled_mfcc"] = classification(test_y, model.predict(test_x), n_classes)
    return ("The logistic regression reads each clip's mean and standard deviation of every MFCC "
            "(no order in time); the recurrent model reads the frames in order.")


def _draw_example(run_dir, frames: np.ndarray, clip: audio.Clip, features: dict) -> None:
    """mfcc_example.png: the standardised MFCC frames of the first test clip."""
    z = (frames[:features["max_frames"]] - np.asarray(features["mean"])) / np.asarray(features["std"])
    times = [f"{k * features['hop_ms'] / 1000:.2f}" for k in range(len(z))]
    step = max(1, len(times) // 12)
    plots.heatmap(z.T, run_dir / "mfcc_example.png", title=f"standardised MFCCs of {clip.path.name} ({clip.label})",
                  xlabels=[t if k % step == 0 else "" for k, t in enumerate(times)],
                  ylabels=[str(k) for k in range(z.shape[1])], xlabel="time (s)", ylabel="MFCC coefficient",
                  cmap="coolwarm")


def _write_report(run_dir, metrics: dict, cell: str, pooled_note: str) -> None:
    d = metrics["data"]
    resampled = (f" {d['resampled_clips']} clips had another sample rate and were resampled to {d['sample_rate']} Hz."
                 if d["resampled_clips"] else "")
    data = (f"## Data\n\n{d['source']}: {d['train_clips']} training clips ({d['fit_clips']} fitted, "
            f"{d['validation_clips']} for validation), {d['test_clips']} test clips, {d['classes']} labels, "
            f"{d['sample_rate']} Hz, {d['shortest_seconds']}-{d['longest_seconds']} s.{resampled}\n\n"
            f"Split: {metrics['split']}.\n\nFeatures: {metrics['features']}.")
    write_classifier_report(run_dir, "Spoken-word recognition", metrics, cell,
                            "the MFCC frames (with their true lengths)", data, pooled_note,
                            "confusion_matrix.png, learning_curves.png, mfcc_example.png")


# ---------------------------------------------------------------- saved runs

class SpeechPredictor:
    """A saved speech run: .predict(wav_paths) -> labels."""

    def __init__(self, model: SequenceClassifier, config: dict):
        self.model, self.config = model.eval(), config
        self.labels: list[str] = config["labels"]
        self.features: dict = config["features"]

    def frames(self, paths) -> list[np.ndarray]:
        """Raw MFCC frames [T, n_mfcc] of each WAV (resampled to the training rate when needed)."""
        return [clip_features(p, self.features)[0] for p in paths]

    def predict_proba(self, paths) -> np.ndarray:
        """Label probabilities [N, n_labels], columns in the order of .labels."""
        x, lengths = prepare(self.frames(paths), self.features)
        return predict_classes(self.model, x, lengths)[1]

    def predict(self, paths) -> list[str]:
        return [self.labels[k] for k in self.predict_proba(paths).argmax(1)]

    def predict_lines(self, inputs: list[str], file: str | None = None) -> list[str]:
        """"label<TAB>probability<TAB>path" per WAV. inputs: WAV paths; file: a folder of WAVs, or a
        text file listing WAV paths one per line (relative paths from the list's folder)."""
        paths = [Path(p) for p in inputs] + (_listed(Path(file)) if file is not None else [])
        p = self.predict_proba(paths)
        return [f"{self.labels[k]}\t{p[i, k]:.4f}\t{path}" for i, (k, path) in enumerate(zip(p.argmax(1), paths))]

    def inspect_input(self, value: str):
        """(first recurrent layer, standardised MFCC frames [1, T, n_mfcc], frame times "0.01s") of a WAV."""
        x, _ = prepare(self.frames([value]), self.features)
        hop = self.features["hop_ms"] / 1000
        return self.model.rnn, self.model.features(x), [f"{k * hop:.2f}s" for k in range(x.shape[1])]


def _listed(file: Path) -> list[Path]:
    """The WAVs of a folder, or the paths a text file lists one per line."""
    if file.is_dir():
        return [c.path for c in audio.find_clips(file, "name")]
    lines = [line.strip() for line in read_text(file, what="list of WAV paths").split("\n")]
    return [(file.parent / line) for line in lines if line]


def load(run) -> SpeechPredictor:
    config, state = runs.load_task_model(run, TASK)
    model = SequenceClassifier(config["model"])
    model.load_state_dict(state)
    return SpeechPredictor(model, config)
