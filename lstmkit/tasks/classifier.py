"""The sequence classifier that classify, sequence and speech share, and its evaluation outputs.

    tokens [B, T] (with an embedding) or features [B, T, F]
      -> recurrent stack (lstmkit.nn.LSTM/GRU, lengths honoured)
      -> pooled state: the last real step of each direction, and the mean over real steps
      -> dropout -> linear -> logits [B, n_classes]
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .. import plots
from . import common, training
from .common import recurrent
from .metrics import classification, confusion_matrix


class SequenceClassifier(nn.Module):
    """Logits [B, n_classes] for padded sequences with lengths [B].

    config keys: n_classes, hidden, layers, cell, bidirectional, dropout, and either vocab_size +
    embedding (token ids in) or n_features (float features in)."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = dict(config)
        if config.get("vocab_size"):
            self.embedding = nn.Embedding(config["vocab_size"], config["embedding"], padding_idx=0)
            width = config["embedding"]
        else:
            self.embedding = None
            width = config["n_features"]
        self.rnn = recurrent(config["cell"], width, config["hidden"], config["layers"], config["bidirectional"],
                             dropout=config.get("dropout", 0.0))
        directions = 2 if config["bidirectional"] else 1
        self.dropout = nn.Dropout(config.get("dropout", 0.0))
        self.head = nn.Linear(2 * directions * config["hidden"], config["n_classes"])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """What the recurrent stack reads: [B, T] ids -> [B, T, E] embeddings; features pass through."""
        return self.embedding(x) if self.embedding is not None else x

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        output, _ = self.rnn(self.features(x), lengths=lengths)              # [B, T, D*H], zero past lengths
        steps = torch.arange(output.shape[1], device=output.device)
        real = (steps[None, :] < lengths.to(output.device)[:, None]).unsqueeze(-1)
        mean = (output * real).sum(1) / lengths.to(output.device).clamp(min=1)[:, None].to(output.dtype)
        hidden = self.config["hidden"]
        last_index = (lengths.to(output.device) - 1).clamp(min=0)
        forward_last = output[torch.arange(output.shape[0], device=output.device), last_index, :hidden]
        pooled = [forward_last]
        if self.config["bidirectional"]:
            pooled.append(output[:, 0, hidden:])                               # the backward direction ends at step 0
        pooled.append(mean)
        return self.head(self.dropout(torch.cat(pooled, dim=-1)))


def pad(sequences: list, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """A list of [T_k] or [T_k, F] arrays -> (padded [B, T_max(, F)] zeros after each end, lengths [B])."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)
    first = np.asarray(sequences[0])
    out = torch.zeros((len(sequences), int(lengths.max()), *first.shape[1:]), dtype=dtype)
    for k, s in enumerate(sequences):
        out[k, :len(s)] = torch.as_tensor(np.asarray(s), dtype=dtype)
    return out, lengths


@torch.no_grad()
def predict_classes(model: SequenceClassifier, x: torch.Tensor, lengths: torch.Tensor, batch_size: int = 256,
                    device: torch.device = torch.device("cpu")) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class [N], probabilities [N, n_classes]) in eval mode, batch by batch."""
    model.eval()
    probabilities = []
    for start in range(0, len(x), batch_size):
        logits = model(x[start:start + batch_size].to(device), lengths[start:start + batch_size].to(device))
        probabilities.append(torch.softmax(logits.float(), -1).cpu())
    p = torch.cat(probabilities).numpy()
    return p.argmax(1), p


def write_classification_outputs(run_dir, true, predicted, labels: list[str], title: str) -> dict:
    """accuracy and macro_f1 of `predicted`, and confusion_matrix.png in run_dir; returns the figures
    with the matrix as a nested list under "confusion_matrix"."""
    n = len(labels)
    figures = classification(true, predicted, n)
    matrix = confusion_matrix(true, predicted, n)
    plots.confusion_matrix(matrix, labels, run_dir / "confusion_matrix.png", title=title)
    return {**figures, "confusion_matrix": matrix.tolist()}


def majority_baseline(train_labels, test_labels, n_classes: int) -> dict:
    """Always predict the commonest training class: its accuracy and macro_f1 on the test labels."""
    majority = int(np.bincount(np.asarray(train_labels), minlength=n_classes).argmax())
    return classification(test_labels, np.full(len(test_labels), majority), n_classes)


def fit_classifier(model: SequenceClassifier, x: torch.Tensor, lengths: torch.Tensor, y: torch.Tensor, val,
                   *, epochs: int, batch_size: int, lr: float, seed: int, device, checkpoint, resume: bool,
                   progress: bool, log, desc: str) -> training.History:
    """Cross-entropy training of `model` on padded x [N, T, F], lengths [N], classes y [N].

    val: (x, lengths, y) picks the epoch with the best validation accuracy; None keeps the last."""

    def batches(epoch):
        order = np.random.default_rng([seed, epoch]).permutation(len(y))  # same batches on resume
        for start in range(0, len(order), batch_size):
            idx = torch.as_tensor(order[start:start + batch_size])
            steps = int(lengths[idx].max())                                  # crop the batch's padding
            yield x[idx, :steps], lengths[idx], y[idx]

    def loss(m, batch):
        bx, bl, by = batch
        return F.cross_entropy(m(bx, bl), by)

    def validate(m):
        vx, vl, vy = val
        predicted, probabilities = predict_classes(m, vx, vl, device=device)
        nll = F.nll_loss(torch.log(torch.as_tensor(probabilities).clamp_min(1e-12)), vy).item()
        return nll, float((predicted == vy.numpy()).mean())

    return training.fit(model, batches=batches, loss=loss, validate=validate if val is not None else None,
                        metric_name="accuracy", higher_is_better=True, epochs=epochs, lr=lr, device=device,
                        checkpoint=checkpoint, resume=resume, progress=progress, log=log, desc=desc)


def comparison_section(model_name: str, figures: dict, baselines: dict, extra: str = "") -> str:
    """The results table and a plain verdict: does the model beat every baseline on accuracy?"""
    rows = [[model_name, figures["accuracy"], figures["macro_f1"]]]
    rows += [[name, b["accuracy"], b["macro_f1"]] for name, b in baselines.items()]
    best_name, best = max(baselines.items(), key=lambda item: item[1]["accuracy"])
    if figures["accuracy"] > best["accuracy"]:
        verdict = (f"The {model_name} beats every baseline: test accuracy {figures['accuracy']:.4f} against "
                   f"{best['accuracy']:.4f} for the best one ({best_name}).")
    else:
        verdict = (f"The {model_name} does **not** beat the {best_name} baseline: test accuracy "
                   f"{figures['accuracy']:.4f} against {best['accuracy']:.4f}.")
    return "## Results (test)\n\n" + common.markdown_table(["model", "accuracy", "macro F1"], rows) + \
        f"\n\n{verdict} {extra}".rstrip()


def model_name(cell: str) -> str:
    return "GRU" if cell == "gru" else "LSTM"


def model_section(model: dict, trained: dict, seconds: float, reads: str) -> str:
    """The report's model paragraph: which recurrent stack read what, and which epoch was kept."""
    kind = "GRU" if model["cell"] == "gru" else f"LSTM ({model['cell']} cell)"
    kind = ("bidirectional " if model["bidirectional"] else "") + kind
    return (f"## Model\n\nA {kind} over {reads}, hidden {model['hidden']}, {model['layers']} layer(s); kept "
            f"epoch {trained['best_epoch']} of {trained['epochs_run']}; {seconds:.1f} s in all.")


# ---------------------------------------------------------------- normalisation


def write_classifier_report(run_dir, title: str, metrics: dict, cell: str, reads: str, data_section: str,
                            note: str, pictures: str) -> None:
    """report.md of a sequence classifier: results next to the baselines with a verdict, the data
    section given, the model paragraph (`reads`: what the recurrent stack read), the pictures."""
    model = model_section(metrics["config"]["model"], metrics["training"], metrics["seconds"], reads)
    figures = {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}
    common.write_report(run_dir, title, [comparison_section(model_name(cell), figures, metrics["baseline"], note),
                                         data_section, model, f"Pictures: {pictures}."])
