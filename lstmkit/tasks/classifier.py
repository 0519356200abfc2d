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

from .. import plots
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
