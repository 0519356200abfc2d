"""A newcomer's Keras LSTM text classifier on real data, on lstmkit; and the same model written
directly in torch with torch.nn.LSTM, timed side by side in one run.

Data: SST-2 sentence polarity (Kim 2014 splits: train 6,920 / dev 872 / test 1,821) from
../shared/data/sst2 ($LSTMKIT_SHARED overrides the shared folder). Vocabulary: training words
seen at least twice; sentences post-padded to 56 tokens, id 0 = padding (masked).

Model (Keras): Embedding(V, 64, mask_zero=True) -> Bidirectional(LSTM(64)) -> Dense(1, sigmoid),
binary cross-entropy, Adam(1e-3), batch 32; the epoch with the best dev accuracy is kept
and evaluated on test.
Twin (torch): nn.Embedding(padding_idx=0) -> nn.LSTM(bidirectional) over packed sequences ->
nn.Linear, BCEWithLogits, torch.optim.Adam(1e-3, eps=1e-7), same batches and epochs.

    python examples/keras_text_classifier.py [--epochs 5] [--limit N] [--no-torch]
Prints per-epoch times of both and the test accuracies.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np

MAXLEN = 56


def shared_dir() -> Path:
    env = os.environ.get("LSTMKIT_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[1] / ".." / "shared"


def read_sst2(split: str):
    path = shared_dir() / "data" / "sst2" / f"stsa.binary.{split}"
    if not path.exists():
        raise FileNotFoundError(f"SST-2 not found at {path}: set LSTMKIT_SHARED to the shared folder")
    labels, texts = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            label, text = line.split(" ", 1)
            labels.append(int(label))
            texts.append(text.split())
    return texts, np.array(labels, dtype="float32")


def encode(texts, vocab):
    ids = np.zeros((len(texts), MAXLEN), dtype="int64")
    for k, words in enumerate(texts):
        seq = [vocab.get(w, 1) for w in words][:MAXLEN]  # 1 = unknown word
        ids[k, :len(seq)] = seq
    return ids


def load(limit=None):
    (tr_x, tr_y), (dev_x, dev_y), (te_x, te_y) = (read_sst2(s) for s in ("train", "dev", "test"))
    if limit:
        tr_x, tr_y = tr_x[:limit], tr_y[:limit]
    counts = Counter(w for words in tr_x for w in words)
    vocab = {w: i + 2 for i, w in enumerate(sorted(w for w, c in counts.items() if c >= 2))}
    return len(vocab) + 2, (encode(tr_x, vocab), tr_y), (encode(dev_x, vocab), dev_y), (encode(te_x, vocab), te_y)


def keras_model(vocab_size):
    import lstmkit as tf

    model = tf.keras.Sequential([
        tf.keras.layers.Embedding(vocab_size, 64, mask_zero=True),
        tf.keras.layers.Bidirectional(tf.keras.layers.LSTM(64)),
        tf.keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def torch_twin(vocab_size):
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(vocab_size, 64, padding_idx=0)
            self.lstm = nn.LSTM(64, 64, batch_first=True, bidirectional=True)
            self.out = nn.Linear(128, 1)

        def forward(self, ids):
            lengths = (ids != 0).sum(1).clamp(min=1).cpu()
            packed = pack_padded_sequence(self.emb(ids), lengths, batch_first=True, enforce_sorted=False)
            _, (h, _) = self.lstm(packed)
            return self.out(torch.cat([h[0], h[1]], dim=1)).squeeze(1)

    return Twin()


class TorchTwin:
    """The twin's training loop, one epoch per call, so the two can alternate epochs."""

    def __init__(self, vocab_size, batch_size=32):
        import torch

        self.torch = torch
        self.model = torch_twin(vocab_size)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3, eps=1e-7)
        self.loss_fn = torch.nn.BCEWithLogitsLoss()
        self.batch_size = batch_size

    def train_epoch(self, train) -> float:
        torch = self.torch
        x, y = torch.from_numpy(train[0]), torch.from_numpy(train[1])
        self.model.train()
        start = time.perf_counter()
        order = torch.randperm(len(x))
        for k in range(0, len(x), self.batch_size):
            idx = order[k:k + self.batch_size]
            self.opt.zero_grad()
            self.loss_fn(self.model(x[idx]), y[idx]).backward()
            self.opt.step()
        return time.perf_counter() - start

    def accuracy(self, data) -> float:
        torch = self.torch
        self.model.eval()
        with torch.no_grad():
            logits = torch.cat([self.model(torch.from_numpy(data[0][k:k + 256])) for k in range(0, len(data[0]), 256)])
        return float(((logits > 0).float().numpy() == data[1]).mean())


class KerasRun:
    """The lstmkit.keras model, one epoch per fit() call (initial_epoch), keeping the best dev epoch."""

    def __init__(self, vocab_size, epochs, batch_size=32, verbose=2):
        import lstmkit as tf

        self.model = keras_model(vocab_size)
        self.epochs, self.batch_size, self.verbose = epochs, batch_size, verbose
        self.times = []
        times = self.times

        class Timer(tf.keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.start = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                self.last = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                times.append(self.last - self.start)  # the training steps only, as for the twin

        self.timer = Timer()
        self.best = (-1.0, None)
        self.history = {"loss": [], "val_accuracy": []}

    def train_epoch(self, epoch, train, dev) -> float:
        h = self.model.fit(train[0], train[1], batch_size=self.batch_size, epochs=epoch + 1, initial_epoch=epoch,
                           validation_data=dev, callbacks=[self.timer], verbose=self.verbose)
        for k in self.history:
            self.history[k] += h.history[k]
        if h.history["val_accuracy"][-1] > self.best[0]:
            self.best = (h.history["val_accuracy"][-1], [w.detach().clone() for w in self.model.state_dict().values()])
        return self.times[-1]

    def best_test_accuracy(self, test) -> float:
        state = dict(zip(self.model.state_dict().keys(), self.best[1]))
        self.model.load_state_dict(state)
        _, acc = self.model.evaluate(test[0], test[1], verbose=0)
        return acc


def train_keras(vocab_size, train, dev, test, epochs, batch_size=32, verbose=2):
    """lstmkit.keras alone: -> (epoch times, (best dev accuracy, its test accuracy), history dict)."""
    run = KerasRun(vocab_size, epochs, batch_size, verbose)
    for epoch in range(epochs):
        run.train_epoch(epoch, train, dev)
    return run.times, (run.best[0], run.best_test_accuracy(test)), run.history


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--limit", type=int, default=None, help="use only the first N training sentences")
    p.add_argument("--no-torch", action="store_true", help="skip the torch.nn.LSTM twin")
    args = p.parse_args(argv)

    import torch
    torch.manual_seed(0)
    import lstmkit as tf
    tf.keras.utils.set_random_seed(0)

    vocab_size, train, dev, test = load(args.limit)
    print(f"SST-2: {len(train[0])} train / {len(dev[0])} dev / {len(test[0])} test sentences, vocabulary {vocab_size}")
    keras_run = KerasRun(vocab_size, args.epochs)
    torch.manual_seed(0)
    twin = None if args.no_torch else TorchTwin(vocab_size)
    t_times, t_best = [], (-1.0, None)
    for epoch in range(args.epochs):  # alternate epochs: both see the same machine load
        keras_run.train_epoch(epoch, train, dev)
        if twin is not None:
            t_times.append(twin.train_epoch(train))
            dev_acc = twin.accuracy(dev)
            if dev_acc > t_best[0]:
                t_best = (dev_acc, twin.accuracy(test))
    k_dev, k_test = keras_run.best[0], keras_run.best_test_accuracy(test)
    print(f"lstmkit.keras: best dev accuracy {k_dev:.4f}, test accuracy {k_test:.4f}")
    if twin is not None:
        k_times = keras_run.times
        print(f"torch.nn.LSTM twin: best dev accuracy {t_best[0]:.4f}, test accuracy {t_best[1]:.4f}")
        print("epoch  lstmkit.keras s  torch s  ratio")
        for e, (a, b) in enumerate(zip(k_times, t_times)):
            print(f"{e + 1:5d}  {a:15.2f}  {b:7.2f}  {a / b:5.2f}")
        print(f"median {np.median(k_times):14.2f}  {np.median(t_times):7.2f}  "
              f"{np.median(k_times) / np.median(t_times):5.2f}")
    return k_test


if __name__ == "__main__":
    main()
