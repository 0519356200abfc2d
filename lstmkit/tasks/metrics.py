"""The figures tasks report, under their usual names (what metrics.json holds at its top level)."""

from __future__ import annotations

import math

import numpy as np


def confusion_matrix(true, predicted, n_classes: int) -> np.ndarray:
    """[n_classes, n_classes] counts: row = true class, column = predicted class."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(true, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return m


def classification(true, predicted, n_classes: int) -> dict:
    """accuracy and macro_f1 (F1 per class, unweighted mean over classes present in true or predicted)."""
    m = confusion_matrix(true, predicted, n_classes)
    tp = np.diag(m).astype(float)
    support, chosen = m.sum(1), m.sum(0)
    present = (support + chosen) > 0
    f1 = np.divide(2 * tp, support + chosen, out=np.zeros_like(tp), where=present)
    return {"accuracy": float(tp.sum() / max(m.sum(), 1)), "macro_f1": float(f1[present].mean()) if present.any() else 0.0}


def bits_per_character(mean_nats: float) -> float:
    """Cross-entropy in nats per character -> bits per character."""
    return mean_nats / math.log(2)


def regression(actual, predicted, train_series, season: int = 1) -> dict:
    """mae, rmse, mape (%; over nonzero actuals) and mase.

    MASE scales the MAE by the in-sample MAE of the seasonal-naive forecast on the training
    series (season=1: the naive last-value forecast), Hyndman & Koehler (2006)."""
    actual, predicted = np.asarray(actual, float), np.asarray(predicted, float)
    err = predicted - actual
    nonzero = actual != 0
    train = np.asarray(train_series, float)
    if len(train) <= season:
        raise ValueError(f"MASE needs more than {season} training values, got {len(train)}")
    scale = np.mean(np.abs(train[season:] - train[:-season]))
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err ** 2))),
        "mape": float(np.mean(np.abs(err[nonzero] / actual[nonzero])) * 100) if nonzero.any() else float("nan"),
        "mase": float(np.mean(np.abs(err)) / scale) if scale > 0 else float("nan"),
    }


def bleu(hypotheses: list[str], references: list[str]) -> float:
    """Corpus BLEU (sacreBLEU, its default 13a tokenisation) of detokenised sentences, 0-100."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(hypotheses, [references]).score)
