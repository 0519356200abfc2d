"""Character-level language model on a plain text file (the classic char-rnn).

A recurrent stack (lstmkit.nn) reads the text one character at a time and learns to predict the
next one. Training is truncated backpropagation through time: the training text is laid out as
--batch-size parallel streams read in consecutive chunks of --seq-length characters, the state
carried from each chunk to the next (gradients stop at the chunk boundary), with Adam and
gradient-norm clipping. Without --test the last --val-fraction (default 10%) of the characters
is the validation/test span. The figure is bits per character (bpc) on that span, next to two
count models fitted on the training characters: the unigram character distribution and a
bigram model (next character given the previous one), both with add-one smoothing.

The run folder also holds samples.txt (text generated at temperatures 0.5, 0.8 and 1.0) and
surprisal.png (the start of the validation span, each character shaded by the model's bits).

  lstmkit generate                                   the embedded tiny-Shakespeare excerpt
  lstmkit generate --data input.txt --hidden 256     a text file of your own
  lstmkit sample RUN --prime "ROMEO:" --temperature 0.7
  lstmkit predict RUN "To be, or not to be"          bits per character of new text
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Container
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import plots
from ..data.errors import DataError
from ..data.shakespeare import EXCERPT_SOURCE, tiny_shakespeare_excerpt
from ..data.tables import read_text
from ..files import atomic_write_text
from . import common, runs, training
from .metrics import bits_per_character

TASK = "generate"
SAMPLE_TEMPERATURES = (0.5, 0.8, 1.0)
EXCERPT_CHARS, EXCERPT_WIDTH = 900, 80      # the surprisal picture: how much text, how wide a row
EVAL_CHUNK = 2048                           # characters per forward call when scoring one long stream


# ---------------------------------------------------------------- the model

class CharLM(nn.Module):
    """ids [B, T] -> logits [B, T, V] and the final recurrent state, from a carried-in state.

    embedding [V, E] -> recurrent stack (common.recurrent: LSTM of any cell, or GRU) -> dropout
    -> linear [H -> V]. config keys: vocab_size, embedding, hidden, layers, cell, dropout."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = dict(config)
        self.embedding = nn.Embedding(config["vocab_size"], config["embedding"])
        self.rnn = common.recurrent(config["cell"], config["embedding"], config["hidden"], config["layers"],
                                    dropout=config["dropout"])
        self.dropout = nn.Dropout(config["dropout"])
        self.head = nn.Linear(config["hidden"], config["vocab_size"])

    def forward(self, ids: torch.Tensor, state=None):
        """ids [B, T], state as the layer returns it (None: zeros) -> (logits [B, T, V], state)."""
        output, state = self.rnn(self.embedding(ids), state)
        return self.head(self.dropout(output)), state

    def step(self, ids: torch.Tensor, state=None):
        """One character per stream, the streaming path: ids [B] -> (logits [B, V], state)."""
        output, state = self.rnn.step(self.embedding(ids), state)
        return self.head(output), state


def detach_state(state):
    """The carried state cut from the graph of the chunk that made it (truncated BPTT)."""
    if state is None or isinstance(state, torch.Tensor):
        return None if state is None else state.detach()
    return tuple(s.detach() for s in state)


@torch.no_grad()
def char_nats(model: CharLM, ids: torch.Tensor, device: torch.device = torch.device("cpu")) -> np.ndarray:
    """Nats of each of ids[1:] given all the characters before it: ids [N] read as one stream, in
    chunks with the state carried (the same as one pass over the whole text). Returns float64 [N - 1]."""
    model.eval()
    ids = ids.to(device)
    out, state = [], None
    for start in range(0, len(ids) - 1, EVAL_CHUNK):
        x = ids[start:start + EVAL_CHUNK][None]
        y = ids[start + 1:start + EVAL_CHUNK + 1][None]
        logits, state = model(x[:, :y.shape[1]], state)
        out.append(F.cross_entropy(logits[0].float(), y[0], reduction="none").double().cpu())
    return torch.cat(out).numpy()


# ---------------------------------------------------------------- the baselines

def count_model_bits(train_ids: np.ndarray, ids: np.ndarray, vocab_size: int, order: int) -> np.ndarray:
    """Bits of each of ids[1:] under an add-one-smoothed count model fitted on train_ids.

    order 0 (unigram): p(c) = (n(c) + 1) / (N + V); order 1 (bigram): p(c | b) = (n(b c) + 1) /
    (n(b .) + V), where n(b .) counts the training pairs that start with b. Returns float64 [len(ids) - 1]."""
    train_ids, ids = np.asarray(train_ids, np.int64), np.asarray(ids, np.int64)
    V, targets = vocab_size, ids[1:]
    if order == 0:
        counts = np.bincount(train_ids, minlength=V)
        return -np.log2((counts[targets] + 1.0) / (len(train_ids) + V))
    if order != 1:
        raise ValueError(f"count_model_bits supports order 0 (unigram) and 1 (bigram), got {order}")
    if len(train_ids) < 2:
        raise ValueError("a bigram model needs at least 2 training characters")
    pairs, counts = np.unique(train_ids[:-1] * V + train_ids[1:], return_counts=True)   # sparse: V*V may be huge
    wanted = ids[:-1] * V + targets
    at = np.searchsorted(pairs, wanted).clip(max=len(pairs) - 1)
    pair_counts = np.where(pairs[at] == wanted, counts[at], 0)
    context_counts = np.bincount(train_ids[:-1], minlength=V)[ids[:-1]]
    return -np.log2((pair_counts + 1.0) / (context_counts + V))


# ---------------------------------------------------------------- data

def _last_line(text: str) -> int:
    return text.count("\n") + (0 if text.endswith("\n") else 1)


def load_corpus(data, test, val_fraction: float, seq_length: int, encoding: str) -> dict:
    """The training and validation texts, where they came from, and how the split was made.

    Returns {"train", "valid", "source", "split", "train_path", "valid_path"}. Errors (DataError
    with file and line): missing file, bad encoding, empty text, a training text shorter than one
    chunk and its next character, a validation span under 2 characters (nothing to predict)."""
    if data is None:
        text, train_path, source = tiny_shakespeare_excerpt(), None, f"embedded: {EXCERPT_SOURCE}"
    else:
        text, train_path, source = read_text(data, encoding, what="plain text"), Path(data), str(data)
    if test is not None:
        train, valid, valid_path = text, read_text(test, encoding, what="plain text"), Path(test)
        split = f"validation/test span: the whole of --test {test} ({len(valid):,} characters); all of the training text trains"
    else:
        cut = int(len(text) * (1.0 - val_fraction))     # floor, as nanoGPT's int(n * 0.9)
        train, valid, valid_path = text[:cut], text[cut:], train_path
        split = (f"first {1 - val_fraction:.0%} of the characters train ({len(train):,}), the last {val_fraction:.0%} "
                 f"(from character {cut:,} on, {len(valid):,} characters) is the validation/test span")
    if len(train) < seq_length + 1:
        raise DataError(train_path or "<embedded text>",
                        f"the training text has {len(train):,} characters; one training chunk needs --seq-length "
                        f"{seq_length} characters and the one after it ({seq_length + 1})"
                        + ("" if test is not None else f", and the last {val_fraction:.0%} is held out for validation")
                        + "; give a longer text or a smaller --seq-length", line=_last_line(text))
    if len(valid) < 2:
        raise DataError(valid_path or "<embedded text>",
                        f"the validation span has {len(valid)} character(s); at least 2 are needed (the first is "
                        "context, the rest are predicted); give a longer text or a larger --val-fraction",
                        line=_last_line(text if test is None else valid))
    return {"train": train, "valid": valid, "source": source, "split": split,
            "train_path": train_path, "valid_path": valid_path}


def unseen_characters(text: str, known: Container[str]) -> list[str]:
    """The distinct characters of `text` missing from the vocabulary, in order of first appearance."""
    return list(dict.fromkeys(c for c in text if c not in known))


def _shown(c: str) -> str:
    """A character as a short visible label: newline, tab and space get a sign."""
    return {"\n": "\\n", "\t": "\\t", " ": "␣"}.get(c, c)


def stream_batches(ids: torch.Tensor, streams: int, seq_length: int, offset: int):
    """The training text as `streams` parallel rows read in consecutive chunks (the char-rnn layout).

    ids [N] from `offset` on -> a list of (x [B, S], y [B, S] = x shifted by one character, first)
    in reading order (views, no copies), where `first` marks the epoch's first chunk (the carried
    state starts from zeros). The last chunk may be shorter than S."""
    per_stream = (len(ids) - offset - 1) // streams
    x = ids[offset:offset + streams * per_stream].view(streams, per_stream)
    y = ids[offset + 1:offset + 1 + streams * per_stream].view(streams, per_stream)
    return [(x[:, start:start + seq_length], y[:, start:start + seq_length], start == 0)
            for start in range(0, per_stream, seq_length)]


# ---------------------------------------------------------------- the command line and training

def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_training_arguments(
        parser, epochs=12, hidden=256, layers=1,
        data_help="a plain text file (default: the embedded tiny-Shakespeare excerpt, 150 KB)",
        test_help="a held-out plain text file to measure bits per character on "
                  "(default: the last --val-fraction of --data)")
    lm = parser.add_argument_group("language model")
    lm.add_argument("--seq-length", type=int, default=100,
                    help="characters per chunk of truncated backpropagation through time (default 100)")
    lm.add_argument("--batch-size", type=int, default=32,
                    help="parallel streams the training text is cut into (default 32)")
    lm.add_argument("--embedding", type=int, default=64, help="character embedding size (default 64)")
    lm.add_argument("--dropout", type=float, default=0.1,
                    help="dropout on the recurrent outputs and between layers (default 0.1)")
    lm.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (default 0.002)")
    lm.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping, 0 for none (default 1.0)")
    lm.add_argument("--val-fraction", type=float, default=0.1,
                    help="without --test, the share of the text, at its end, held out (default 0.1)")
    lm.add_argument("--sample-length", type=int, default=500,
                    help="characters per sample written to samples.txt (default 500)")
    lm.add_argument("--encoding", default="utf-8", help="text encoding of the files (default utf-8)")


def train(data=None, test=None, out=None, *, seed: int = 0, epochs: int = 12, hidden: int = 256, layers: int = 1,
          cell: str = "vanilla", bidirectional: bool = False, device: str = "auto", resume: bool = False,
          progress: bool = True, log=print, seq_length: int = 100, batch_size: int = 32, embedding: int = 64,
          dropout: float = 0.1, lr: float = 2e-3, clip: float = 1.0, val_fraction: float = 0.1,
          sample_length: int = 500, encoding: str = "utf-8") -> runs.TaskResult:
    """Train a character language model; write model, metrics (bpc), plots, samples and report."""
    common.check_positive(epochs=epochs, hidden=hidden, layers=layers, seq_length=seq_length,
                          batch_size=batch_size, embedding=embedding, sample_length=sample_length)
    if bidirectional:
        raise ValueError("--bidirectional: a language model predicts each character from the ones before it, "
                         "so it cannot also read the text backwards")
    if not 0 < val_fraction < 1:
        raise ValueError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    if not 0 <= dropout < 1:
        raise ValueError(f"--dropout must be in [0, 1), got {dropout}")
    if not lr > 0 or clip < 0:
        raise ValueError(f"--lr must be > 0 and --clip >= 0, got lr {lr}, clip {clip}")
    log = log if progress else (lambda line: None)      # --quiet: nothing printed
    with common.Timer() as timer:
        training.seed_everything(seed)   # the stream offsets below draw from their own (seed, epoch) generators
        dev = training.resolve_device(device)
        corpus = load_corpus(data, test, val_fraction, seq_length, encoding)
        train_text, valid_text = corpus["train"], corpus["valid"]
        # The vocabulary spans both texts (as nanoGPT's does), so a character met only in validation
        # gets a finite, if poor, probability instead of making the figure infinite.
        chars = sorted(set(train_text) | set(valid_text))
        index = {c: k for k, c in enumerate(chars)}
        train_ids = torch.tensor([index[c] for c in train_text], dtype=torch.int64)
        valid_ids = torch.tensor([index[c] for c in valid_text], dtype=torch.int64)
        unigram_counts = np.bincount(train_ids.numpy(), minlength=len(chars))
        config = {"vocab": "".join(chars), "vocab_size": len(chars), "embedding": embedding, "hidden": hidden,
                  "layers": layers, "cell": cell, "dropout": float(dropout), "seq_length": seq_length,
                  "unigram_counts": unigram_counts.tolist(), "encoding": encoding}
        run_dir = runs.make_run_dir(TASK, out)
        # Each stream needs at least one whole chunk; a short text gets fewer streams.
        streams = max(1, min(batch_size, (len(train_ids) - 1) // seq_length))
        max_offset = min(seq_length - 1, len(train_ids) - 1 - streams * seq_length)
        log(f"generate: {corpus['source']}: {len(train_ids):,} training characters in {streams} streams, "
            f"{len(valid_ids):,} validation characters, {len(chars)} distinct characters; {cell} "
            f"{layers}x{hidden}, chunks of {seq_length}")

        model = CharLM(config).to(dev)
        carried = {"state": None}

        def batches(epoch: int):
            # A fresh chunk alignment each epoch, drawn from (seed, epoch) so a resumed run sees the same.
            offset = int(np.random.default_rng([seed, epoch]).integers(0, max_offset + 1))
            return stream_batches(train_ids, streams, seq_length, offset)

        def loss(model: CharLM, batch) -> torch.Tensor:
            x, y, first = batch
            logits, state = model(x, None if first else carried["state"])
            carried["state"] = detach_state(state)
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

        def validate(model: CharLM):
            nats = char_nats(model, valid_ids, dev).mean()
            return float(nats), bits_per_character(float(nats))

        history = training.fit(model, batches=batches, loss=loss, validate=validate, metric_name="bpc",
                               epochs=epochs, lr=lr, clip=clip or None, device=dev,
                               checkpoint=run_dir / "checkpoint.safetensors", resume=resume, progress=progress,
                               log=log, desc=TASK)

        nats = char_nats(model, valid_ids, dev)
        lstm_bits = nats / math.log(2)
        baselines = {name: count_model_bits(train_ids.numpy(), valid_ids.numpy(), len(chars), order)
                     for name, order in (("unigram", 0), ("bigram", 1))}
        runs.save_model(run_dir, TASK, model, config)
        predictor = Predictor(model, config, dev)
        samples = {t: predictor.sample(sample_length, temperature=t, seed=seed) for t in SAMPLE_TEMPERATURES}
        write_samples(run_dir / "samples.txt", samples)
        plots.learning_curves(history, run_dir / "learning_curves.png",
                              title=f"{TASK}: cross-entropy (nats/char)")
        plots.shaded_text(valid_text[:EXCERPT_CHARS], lstm_bits[:EXCERPT_CHARS - 1], run_dir / "surprisal.png",
                          width=EXCERPT_WIDTH, title=f"validation excerpt, shaded by the model's bits per character "
                             f"(mean here {lstm_bits[:EXCERPT_CHARS - 1].mean():.2f}; bigram "
                             f"{baselines['bigram'][:EXCERPT_CHARS - 1].mean():.2f})")
    unseen = unseen_characters(valid_text, set(train_text))
    bpc = float(lstm_bits.mean())
    metrics = {
        "bpc": bpc,
        "nats_per_char": float(nats.mean()),
        "perplexity": float(2.0 ** bpc),
        "baseline": {name: {"bpc": float(bits.mean())} for name, bits in baselines.items()},
        "training": {"epochs_run": len(history.train_loss), "best_epoch": history.best_epoch,
                     "validation_bpc_per_epoch": [round(v, 4) for v in history.val_metric]},
        "data": {"source": corpus["source"], "train_chars": len(train_ids), "validation_chars": len(valid_ids),
                 "scored_chars": len(valid_ids) - 1, "vocabulary": len(chars),
                 "validation_chars_unseen_in_training": unseen},
        "split": corpus["split"] + "; the span's first character is context only, the other "
                 f"{len(valid_ids) - 1:,} are scored, each given every span character before it; "
                 "the kept epoch is the one with the lowest bpc on this same span (there is no separate "
                 "test span), so the figure is slightly optimistic",
        "seconds": round(timer.seconds, 2),
        "config": {**{k: v for k, v in config.items() if k not in ("vocab", "unigram_counts")},
                   "streams": streams, "lr": lr, "clip": clip, "epochs": epochs, "seed": seed,
                   "device": str(dev)},
    }
    runs.write_metrics(run_dir, metrics)
    write_generate_report(run_dir, metrics, samples[0.8])
    checkpoint = run_dir / "checkpoint.safetensors"
    if checkpoint.exists():
        checkpoint.unlink()
    log(f"validation: {bpc:.4f} bits/char ({metrics['nats_per_char']:.4f} nats/char); baselines: "
        + ", ".join(f"{name} {value['bpc']:.4f}" for name, value in metrics["baseline"].items()))
    return runs.TaskResult(TASK, run_dir, metrics, model, history)


# ---------------------------------------------------------------- outputs

def write_samples(path: Path, samples: dict[float, str]) -> None:
    parts = [f"=== temperature {t} ===\n{text}\n" for t, text in samples.items()]
    atomic_write_text(path, "\n".join(parts))


def write_generate_report(run_dir: Path, metrics: dict, sample: str) -> Path:
    bpc, base = metrics["bpc"], metrics["baseline"]
    best_base = min(base, key=lambda name: base[name]["bpc"])
    rows = [["LSTM language model" if metrics["config"]["cell"] != "gru" else "GRU language model",
             bpc, metrics["nats_per_char"]]]
    rows += [[f"{name} count model (add-one)", v["bpc"], v["bpc"] * math.log(2)] for name, v in base.items()]
    if bpc < base[best_base]["bpc"]:
        verdict = (f"The model beats the best count baseline ({best_base}, {base[best_base]['bpc']:.3f} bpc) by "
                   f"{base[best_base]['bpc'] - bpc:.3f} bits per character.")
    else:
        verdict = (f"The model does **not** beat the {best_base} count baseline ({base[best_base]['bpc']:.3f} bpc): "
                   "it needs more epochs, more hidden units or more text.")
    d, c, t = metrics["data"], metrics["config"], metrics["training"]
    unseen = d["validation_chars_unseen_in_training"]
    sections = [
        "## Result\n\n"
        f"Bits per character on the validation span: **{bpc:.3f}** ({metrics['nats_per_char']:.3f} nats/char, "
        f"per-character perplexity {metrics['perplexity']:.2f}). {verdict}\n\n"
        + common.markdown_table(["model", "bits/char", "nats/char"], rows),
        "## Data and split\n\n"
        f"- text: {d['source']}\n- {metrics['split']}\n"
        f"- {d['train_chars']:,} training characters, {d['vocabulary']} distinct characters"
        + (f"; in validation only: {', '.join(map(repr, unseen))}" if unseen else ""),
        "## Training\n\n"
        f"{c['cell']} {c['layers']}x{c['hidden']}, embedding {c['embedding']}, dropout {c['dropout']}; truncated "
        f"BPTT over chunks of {c['seq_length']} characters in {c['streams']} parallel streams, state carried "
        f"between chunks; Adam (lr {c['lr']}), gradient-norm clip {c['clip']}. {t['epochs_run']} epochs, "
        f"the weights of epoch {t['best_epoch']} (lowest validation loss) kept; {metrics['seconds']:.0f} s "
        f"on {c['device']}.",
        "## Sample (temperature 0.8)\n\n```\n" + sample[:400] + "\n```\n\nMore in samples.txt.",
        "Files: model.safetensors, metrics.json, samples.txt, learning_curves.png, surprisal.png "
        "(the validation text shaded by the model's bits per character).",
    ]
    return common.write_report(run_dir, "generate: character-level language model", sections)


# ---------------------------------------------------------------- a saved run

class Predictor:
    """A trained character language model: bits per character of new text, and samples.

    Predictor(model, config) wraps a CharLM and the config it was saved with; load(run) reads one."""

    def __init__(self, model: CharLM, config: dict, device: torch.device = torch.device("cpu")):
        self.model, self.config, self.device = model.eval(), config, device
        self.chars = config["vocab"]
        self.index = {c: k for k, c in enumerate(self.chars)}
        # The vocabulary also holds characters met only in the validation text; input may use only
        # the ones the model was trained on (a nonzero training count).
        self.known = {c for c, n in zip(self.chars, config["unigram_counts"]) if n > 0}

    def encode(self, text: str) -> torch.Tensor:
        """text -> ids [len(text)]; characters the model never saw are a ValueError naming them."""
        unseen = unseen_characters(text, self.known)
        if unseen:
            raise ValueError(f"character(s) {', '.join(map(repr, unseen))} never occur in the training text; "
                             f"the model was trained on {len(self.known)}: {''.join(sorted(self.known))!r}")
        return torch.tensor([self.index[c] for c in text], dtype=torch.int64)

    def bpc(self, text: str) -> float:
        """Mean bits of each character of `text` after its first, given the ones before it."""
        if len(text) < 2:
            raise ValueError(f"bits per character needs a text of at least 2 characters (the first is context), "
                             f"got {text!r}")
        return float(char_nats(self.model, self.encode(text), self.device).mean() / math.log(2))

    @torch.no_grad()
    def sample(self, length: int = 500, temperature: float = 0.8, top_k: int = 0, prime: str = "",
               seed: int = 0) -> str:
        """`prime` followed by `length` generated characters (the first drawn from the training
        characters' frequencies when there is no prime), each from softmax(logits / temperature),
        among the top_k likeliest when top_k > 0. The same seed gives the same text."""
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise ValueError(f"--length must be a whole number >= 0, got {length!r}")
        if not temperature > 0:
            raise ValueError(f"--temperature must be > 0, got {temperature}")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
            raise ValueError(f"--top-k must be a whole number >= 0 (0: all characters), got {top_k!r}")
        unseen = unseen_characters(prime, self.known)
        if unseen:
            raise ValueError(f"--prime holds character(s) {', '.join(map(repr, unseen))} that never occur in the "
                             f"training text; the model was trained on {''.join(sorted(self.known))!r}")
        if length == 0:
            return prime
        self.model.eval()
        generator = torch.Generator().manual_seed(seed)
        out = list(prime)
        if not prime:
            counts = torch.tensor(self.config["unigram_counts"], dtype=torch.float64)
            out.append(self.chars[int(torch.multinomial(counts, 1, generator=generator))])
        logits, state = self.model(self.encode("".join(out))[None].to(self.device))
        logits = logits[0, -1]
        while len(out) < len(prime) + length:
            scaled = logits.double().cpu() / temperature
            if 0 < top_k < len(scaled):
                scaled[scaled < torch.topk(scaled, top_k).values[-1]] = -math.inf
            k = int(torch.multinomial(torch.softmax(scaled, -1), 1, generator=generator))
            out.append(self.chars[k])
            logits, state = self.model.step(torch.tensor([k], device=self.device), state)
            logits = logits[0]
        return "".join(out)

    def predict_lines(self, inputs: list[str], file: str | None = None) -> list[str]:
        """`lstmkit predict`: one line per input text, "<bpc> bits/char  <text>"; with `file`, one line
        for the whole file's text (a character the model never saw: DataError with line and column)."""
        if file is not None:
            text = read_text(file, self.config.get("encoding", "utf-8"), what="plain text")   # as in training
            for number, line in enumerate(text.split("\n"), start=1):
                unseen = unseen_characters(line, self.known)
                if unseen:
                    column = line.index(unseen[0]) + 1
                    raise DataError(file, f"character {unseen[0]!r} (column {column}) never occurs in the "
                                          "training text, so the model cannot score it", line=number)
            if len(text) < 2:
                raise DataError(file, "holds fewer than 2 characters; bits per character needs at least 2")
            return [f"{self.bpc(text):.4f} bits/char  {file} ({len(text):,} characters)"]
        return [f"{self.bpc(text):.4f} bits/char  {text if len(text) <= 60 else text[:57] + '...'}"
                for text in inputs]

    def inspect_input(self, value: str):
        """(first recurrent layer, its input [1, T, embedding] for `value`, the T characters as labels)."""
        with torch.no_grad():
            x = self.model.embedding(self.encode(value)[None].to(self.device))
        return self.model.rnn, x, [_shown(c) for c in value]


def load(run) -> Predictor:
    """The Predictor of a saved generate run (a run folder or its model.safetensors)."""
    config, state = runs.load_task_model(run, TASK)
    model = CharLM(config)
    model.load_state_dict(state)
    return Predictor(model.eval(), config)
