"""Spoken words from WAV files: labelled folders, reading (resampled when needed), MFCC frames.

A folder of WAVs is labelled either by sub-folder (`yes/take1.wav` -> "yes") or by the file-name
prefix before the first '_' (the Free Spoken Digit Dataset's `{digit}_{speaker}_{index}.wav` -> digit).
The embedded default is a 240-file subset of FSDD (CC BY-SA 4.0): speakers nicolas, theo and
yweweler, digits 0-9, takes 0, 1 (official test part) and 5-10 (training part).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import DataError

LABEL_SOURCES = ("auto", "name", "folder")
FSDD_NAME = re.compile(r"^(?P<label>[^_]+)_(?P<speaker>[^_]+)_(?P<index>\d+)$")
FSDD_TEST_INDICES = range(0, 5)   # upstream README: "Recordings numbered 0-4 (inclusive) are in the test"


@dataclass(frozen=True)
class Clip:
    """One WAV file and its label."""

    path: Path
    label: str


def embedded_speech_folder() -> Path:
    """The folder of the embedded FSDD subset (lstmkit/data/speech/)."""
    return Path(str(resources.files(__package__).joinpath("speech")))


def find_clips(folder, label_from: str = "auto") -> list[Clip]:
    """The WAV files under `folder` (sorted by path) with their labels.

    label_from: "folder" (the WAV's sub-folder under `folder`), "name" (the file-name prefix before
    the first '_') or "auto" (folder when any WAV sits in a sub-folder, else name)."""
    if label_from not in LABEL_SOURCES:
        raise ValueError(f"--label-from must be one of {', '.join(LABEL_SOURCES)}, got {label_from!r}")
    folder = Path(folder)
    if not folder.exists():
        raise DataError(folder, "no such folder (expected a folder of WAV files)")
    if not folder.is_dir():
        raise DataError(folder, "is a file; expected a folder of WAV files (labelled by sub-folder or name prefix)")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".wav" and p.is_file())
    if not paths:
        raise DataError(folder, "holds no .wav files")
    if label_from == "auto":
        label_from = "folder" if any(p.parent != folder for p in paths) else "name"
    clips = []
    for p in paths:
        if label_from == "folder":
            if p.parent == folder:
                raise DataError(p, "sits directly in the data folder, but labels come from sub-folders "
                                   "(move it into a folder named after its label, or use --label-from name)")
            label = p.relative_to(folder).parts[0]
        else:
            label = p.stem.split("_", 1)[0]
            if not label:
                raise DataError(p, "the file name starts with '_': no label prefix before the first '_'")
        clips.append(Clip(p, label))
    return clips


def is_fsdd(clips: list[Clip]) -> bool:
    """Whether every file is named like FSDD's `{label}_{speaker}_{index}.wav`."""
    return all(FSDD_NAME.match(c.path.stem) for c in clips)


def fsdd_is_test(clip: Clip) -> bool:
    """FSDD's official split: takes 0-4 are test, 5-49 training."""
    return int(FSDD_NAME.match(clip.path.stem)["index"]) in FSDD_TEST_INDICES


def read_wav(path, sample_rate: int | None = None) -> tuple[np.ndarray, int, bool]:
    """-> (mono float32 samples [S] in [-1, 1], sample rate, resampled?).

    Stereo is averaged to mono. With `sample_rate`, a file at another rate is resampled to it
    (librosa, soxr) and the third value says so."""
    import soundfile

    path = Path(path)
    if not path.exists():
        raise DataError(path, "no such WAV file")
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise DataError(path, f"cannot be read as audio (corrupt or not a WAV file): {exc}") from None
    samples = samples.mean(axis=1)
    if not len(samples):
        raise DataError(path, "holds no audio samples")
    if not np.isfinite(samples).all():
        raise DataError(path, "holds samples that are not finite numbers")
    if sample_rate is not None and rate != sample_rate:
        import librosa

        return librosa.resample(samples, orig_sr=rate, target_sr=sample_rate).astype(np.float32), sample_rate, True
    return samples, rate, False


def frame_sizes(sample_rate: int, window_ms: float, hop_ms: float) -> tuple[int, int, int]:
    """(window, hop, n_fft) in samples; n_fft is the next power of two >= window."""
    window = max(int(round(sample_rate * window_ms / 1000)), 16)
    hop = max(int(round(sample_rate * hop_ms / 1000)), 1)
    return window, hop, 1 << (window - 1).bit_length()


def mfcc(samples: np.ndarray, sample_rate: int, n_mfcc: int = 20, window_ms: float = 25.0,
         hop_ms: float = 10.0, n_mels: int = 40) -> np.ndarray:
    """MFCC frames [T, n_mfcc] (float32) of mono samples [S]; T = 1 + S // hop (librosa, centred frames)."""
    import librosa

    window, hop, n_fft = frame_sizes(sample_rate, window_ms, hop_ms)
    if len(samples) < n_fft:                       # too short for one frame: pad with silence
        samples = np.pad(samples, (0, n_fft - len(samples)))
    coefficients = librosa.feature.mfcc(y=samples, sr=sample_rate, n_mfcc=n_mfcc, n_fft=n_fft, win_length=window,
                                        hop_length=hop, n_mels=n_mels, fmax=sample_rate / 2)
    return coefficients.T.astype(np.float32)
