"""Text classification (e.g. sentiment): a word embedding and a bidirectional LSTM read each text.

Data: a CSV/TSV file with a text column and a label column (--text-column, --label-column; defaults
text, label). Labels may be any strings (pos/neg, 0/1, 1..5 stars); their names are kept for the
predictions and the confusion matrix. Without --data, the embedded UCI "Sentiment Labelled Sentences"
(3,000 review sentences from amazon, imdb and yelp, positive/negative) is used.

Text is lower-cased and split into word and punctuation tokens; words seen fewer than --min-count
times in the training part, or beyond the --max-vocab commonest, become <unk>; only the first
--max-length tokens of a text are read. Without --test, a seeded stratified --test-fraction of the
data is held out for testing; the model is picked on a validation part (--validation FILE, or a
seeded stratified --val-fraction of the training data).

Writes: model.safetensors, metrics.json (accuracy, macro-F1, and the baselines: the majority class
and a bag-of-words logistic regression when scikit-learn is installed), confusion_matrix.png,
learning_curves.png and report.md. Predict with `lstmkit predict RUN "a text" ...`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import plots
from ..data.errors import DataError
from ..data.splits import label_order, stratified_split
from ..data.sentiment import FILE_NAME as EMBEDDED_FILE, sentiment_sentences
from ..data.tables import read_table, read_text
from ..data.vocab import Vocabulary, words
from . import common, runs, training
from .classifier import SequenceClassifier, majority_baseline, pad, predict_classes, write_classification_outputs

TASK = "classify"
EMBEDDED_NAME = 'UCI "Sentiment Labelled Sentences" (Kotzias et al. 2015, CC BY 4.0), embedded'


def add_arguments(parser) -> None:
    common.add_training_arguments(parser, epochs=10, hidden=64, bidirectional=True, text_columns=True,
                                  data_help="CSV/TSV with a text and a label column (default: the embedded "
                                            "UCI sentiment sentences)")
    task = parser.add_argument_group("text classification")
    task.add_argument("--validation", metavar="FILE",
                      help="validation data for picking the best epoch (default: a split of the training data)")
    task.add_argument("--test-fraction", type=float, default=0.2,
                      help="share of --data held out for testing when there is no --test (default 0.2)")
    task.add_argument("--val-fraction", type=float, default=0.1,
                      help="share of the training data held out for validation without --validation (default 0.1)")
    task.add_argument("--max-length", type=int, default=100,
                      help="tokens read per text; longer texts are cut after this many (default 100)")
    task.add_argument("--min-count", type=int, default=2,
                      help="training occurrences a word needs to get its own embedding, else <unk> (default 2)")
    task.add_argument("--max-vocab", type=int, default=20000,
                      help="vocabulary cap including <pad> and <unk>: the commonest words (default 20000)")
    task.add_argument("--embedding", type=int, default=64, help="word embedding size (default 64)")
    task.add_argument("--dropout", type=float, default=0.5, help="dropout before the output layer (default 0.5)")
    task.add_argument("--word-dropout", type=float, default=0.4,
                      help="share of training tokens replaced by <unk> each epoch, against overfitting (default 0.4)")
    task.add_argument("--batch-size", type=int, default=32, help="texts per batch (default 32)")
    task.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (default 0.002)")


@dataclass
class Examples:
    """Texts and their labels, with where each came from (for errors that name the line)."""

    path: str
    texts: list[str]
    labels: list[str]
    lines: list[int]

    def subset(self, index) -> "Examples":
        return Examples(self.path, [self.texts[k] for k in index], [self.labels[k] for k in index],
                        [self.lines[k] for k in index])


def read_examples(path, text_column: str = "text", label_column: str = "label", encoding: str = "utf-8") -> Examples:
    """A user's CSV/TSV as Examples; DataError (file, line, column) for every way it can be unusable."""
    table = read_table(path, encoding=encoding)
    for column in (text_column, label_column):      # both names checked before any value
        table.index(column)
    texts = table.strings(text_column)
    labels = [label.strip() for label in table.strings(label_column)]
    return Examples(str(path), texts, labels, table.lines)


def embedded_examples() -> Examples:
    texts, labels, _ = sentiment_sentences()
    return Examples(f"{EMBEDDED_FILE} (embedded)", texts, labels, list(range(2, len(texts) + 2)))


def check_known_labels(examples: Examples, labels: list[str], label_column: str) -> None:
    known = set(labels)
    for label, line in zip(examples.labels, examples.lines):
        if label not in known:
            raise DataError(examples.path, f"label {label!r} never occurs in the training data "
                                           f"(its labels: {', '.join(map(repr, labels))})",
                            line=line, column=label_column)


def encode(texts: list[str], vocab: Vocabulary, max_length: int) -> list[np.ndarray]:
    """Texts -> token-id arrays [T_k], 1 <= T_k <= max_length (the first max_length tokens)."""
    out = []
    for text in texts:
        tokens = words(text)[:max_length]
        if not tokens:
            raise ValueError(f"cannot classify an empty text: {text!r}")
        out.append(np.asarray(vocab.encode(tokens), dtype=np.int64))
    return out


def length_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of indices whose texts have similar lengths, so little padding is run through.

    Shuffle, sort by length within pools of 20 batches, cut into batches, shuffle the batches."""
    order = rng.permutation(len(lengths))
    pool = 20 * batch_size
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start:start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size)]
    return [batches[k] for k in rng.permutation(len(batches))]


def bag_of_words_baseline(train_texts, train_y, test_texts, test_y, n_classes: int) -> dict:
    """Logistic regression on tf-idf word and word-pair counts (same tokeniser as the LSTM), or a
    note that it was skipped when scikit-learn is absent."""
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        return {"skipped": "scikit-learn is not installed"}
    from .metrics import classification

    vectorizer = TfidfVectorizer(tokenizer=words, lowercase=False, token_pattern=None, ngram_range=(1, 2),
                                 sublinear_tf=True)
    model = LogisticRegression(C=10.0, max_iter=2000)
    model.fit(vectorizer.fit_transform(train_texts), train_y)
    predicted = model.predict(vectorizer.transform(test_texts))
    return classification(test_y, predicted, n_classes)


def train(data=None, test=None, out=None, *, seed=0, epochs=10, hidden=64, layers=1, cell="vanilla",
          bidirectional=True, device="auto", resume=False, progress=True, log=print,
          text_column="text", label_column="label", encoding="utf-8", validation=None,
          test_fraction=0.2, val_fraction=0.1, max_length=100, min_count=2, max_vocab=20000,
          embedding=64, dropout=0.5, word_dropout=0.4, batch_size=32, lr=2e-3) -> runs.TaskResult:
    """Train on `data` (CSV/TSV path, or None for the embedded sentiment sentences), test, write the run.

    Returns TaskResult(run_dir, metrics, model): metrics hold accuracy, macro_f1, confusion_matrix,
    labels and baseline {"majority": ..., "bag_of_words_logreg": ...}."""
    common.check_positive(epochs=epochs, hidden=hidden, layers=layers, max_length=max_length, min_count=min_count,
                          max_vocab=max_vocab, embedding=embedding, batch_size=batch_size)
    for name, value in (("test_fraction", test_fraction), ("val_fraction", val_fraction)):
        if not 0 < value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must lie between 0 and 1, got {value}")
    for name, value in (("dropout", dropout), ("word_dropout", word_dropout)):
        if not 0 <= value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must lie in [0, 1), got {value}")
    if not lr > 0:
        raise ValueError(f"--lr must be positive, got {lr}")
    say = log if progress else (lambda message: None)
    with common.Timer() as timer:
        rng = training.seed_everything(seed)
        dev = training.resolve_device(device)
        columns = dict(text_column=text_column, label_column=label_column, encoding=encoding)
        source = read_examples(data, **columns) if data is not None else embedded_examples()
        if len(set(source.labels)) < 2:
            raise DataError(source.path, f"every row has the label {source.labels[0]!r}; a classifier needs at "
                                         "least two classes", line=source.lines[0], column=label_column)
        train_set, test_set, split = _hold_out(source, test, columns, test_fraction, rng, "test")
        train_set, val_set, val_split = _hold_out(train_set, validation, columns, val_fraction, rng, "validation")
        labels = label_order(train_set.labels)      # every label of source: the split keeps one of each
        check_known_labels(test_set, labels, label_column)
        check_known_labels(val_set, labels, label_column)
        class_id = {label: k for k, label in enumerate(labels)}
        y_train, y_val, y_test = ([class_id[label] for label in s.labels] for s in (train_set, val_set, test_set))

        vocab = Vocabulary.build((words(t)[:max_length] for t in train_set.texts), min_count=min_count,
                                 max_size=max_vocab)
        x_train, x_val, x_test = (encode(s.texts, vocab, max_length) for s in (train_set, val_set, test_set))
        cut = sum(len(words(t)) > max_length for s in (train_set, val_set, test_set) for t in s.texts)
        say(f"classify: {len(train_set.texts)} training, {len(val_set.texts)} validation, {len(test_set.texts)} test "
            f"texts; {len(labels)} classes; vocabulary {len(vocab)} words")

        model_config = dict(vocab_size=len(vocab), embedding=embedding, n_classes=len(labels), hidden=hidden,
                            layers=layers, cell=cell, bidirectional=bidirectional, dropout=dropout)
        model = SequenceClassifier(model_config)
        run_dir = runs.make_run_dir(TASK, out)
        history = _fit(model, x_train, y_train, x_val, y_val, len(labels), dev, seed, epochs, batch_size, lr,
                       word_dropout, vocab.ids[vocab.unknown], run_dir, resume, progress, log)

        predicted, _ = _predict(model, x_test, dev)
        figures = write_classification_outputs(run_dir, y_test, predicted, labels,
                                               title=f"confusion matrix (test, {len(y_test)} texts)")
        baseline = {"majority": majority_baseline(y_train, y_test, len(labels)),
                    "bag_of_words_logreg": bag_of_words_baseline(train_set.texts, y_train, test_set.texts, y_test,
                                                                 len(labels))}
        plots.learning_curves(history, run_dir / "learning_curves.png", title="classify: loss per epoch")
        config = {"model": model_config, "vocab": vocab.to_json(), "labels": labels, "max_length": max_length,
                  "tokenizer": "lower-cased words and punctuation (lstmkit.data.vocab.words)", **columns}
        runs.save_model(run_dir, TASK, model, config)
    settings = dict(epochs=epochs, hidden=hidden, layers=layers, cell=cell, bidirectional=bidirectional,
                    embedding=embedding, dropout=dropout, word_dropout=word_dropout, batch_size=batch_size, lr=lr,
                    max_length=max_length,
                    min_count=min_count, max_vocab=max_vocab, seed=seed, device=str(dev))
    metrics = {
        **figures, "labels": labels, "baseline": baseline,
        "data": {"dataset": EMBEDDED_NAME if data is None else str(data),
                 "train": {"file": train_set.path, "texts": len(x_train)},
                 "validation": {"file": val_set.path, "texts": len(x_val)},
                 "test": {"file": test_set.path, "texts": len(x_test)},
                 "vocabulary": len(vocab), "texts_cut_at_max_length": cut,
                 "unknown_token_share_test": _unknown_share(x_test, vocab)},
        "split": f"{split} {val_split}",
        "training": {"best_epoch": history.best_epoch, "epochs_run": len(history.train_loss),
                     "model_selection": "the epoch with the best validation macro-F1"},
        "seconds": round(timer.seconds, 2), "config": settings,
    }
    runs.write_metrics(run_dir, metrics)
    _write_report(run_dir, metrics, labels)
    (run_dir / "checkpoint.safetensors").unlink(missing_ok=True)   # only now: the run is complete
    return runs.TaskResult(TASK, run_dir, metrics, model, history)


def _hold_out(source: Examples, given, columns: dict, fraction: float, rng, part: str):
    """(kept, held-out, how it was made) for part "test" or "validation": the file given for it,
    else a stratified random `fraction` of each label of `source`, drawn with the run's seed."""
    option = "--test" if part == "test" else "--validation"
    if given is not None:
        held_set = read_examples(given, **columns)
        return source, held_set, f"{part.capitalize()} data: {held_set.path} (as given); training data: {source.path}."
    kept, held = stratified_split(source.labels, fraction, rng)
    if len(held) == 0:
        raise DataError(source.path, f"only {len(source.texts)} rows: too few to hold out a {part} part (each label "
                                     f"needs two or more rows); add rows or give {option}",
                        column=columns["label_column"])
    use = "for model selection only; the model and the baselines learn" if part == "validation" else "the model learns"
    return (source.subset(kept), source.subset(held),
            f"{part.capitalize()}: a stratified random {fraction:.0%} of each label of {source.path}, drawn with the "
            f"run's seed ({len(held)} of {len(source.texts)} texts), {use} from the remaining {len(kept)}.")


def _fit(model, x_train, y_train, x_val, y_val, n_classes, dev, seed, epochs, batch_size, lr, word_dropout, unk,
         run_dir, resume, progress, log) -> training.History:
    """training.fit over length-bucketed batches with word dropout, the best validation macro-F1 kept."""
    from .metrics import classification

    lengths = np.array([len(x) for x in x_train])
    targets = torch.tensor(y_train, dtype=torch.int64)

    def batches(epoch):
        rng = np.random.default_rng([seed, epoch])
        for index in length_batches(lengths, batch_size, rng):
            x, n = pad([x_train[k] for k in index], dtype=torch.int64)
            dropped = torch.from_numpy(rng.random(tuple(x.shape)) < word_dropout) & (x > 0)
            yield x.masked_fill(dropped, unk), n, targets[index]

    def loss(m, batch):
        x, n, y = batch
        return torch.nn.functional.cross_entropy(m(x, n), y)

    def validate(m):
        predicted, p = _predict(m, x_val, dev)
        nll = -np.log(np.clip(p[np.arange(len(y_val)), y_val], 1e-12, None)).mean()
        return float(nll), classification(y_val, predicted, n_classes)["macro_f1"]

    checkpoint = run_dir / "checkpoint.safetensors"
    history = training.fit(model, batches=batches, loss=loss, validate=validate, metric_name="macro-F1",
                           higher_is_better=True, epochs=epochs, lr=lr, device=dev, checkpoint=checkpoint,
                           resume=resume, progress=progress, log=log, desc=TASK)
    return history


def _predict(model, encoded: list[np.ndarray], dev) -> tuple[np.ndarray, np.ndarray]:
    """(class ids [N], probabilities [N, n_classes]), run in length order so batches carry little padding."""
    order = np.argsort([len(x) for x in encoded], kind="stable")
    x, lengths = pad([encoded[k] for k in order], dtype=torch.int64)
    predicted, p = predict_classes(model, x, lengths, device=dev)
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    return predicted[back], p[back]


def _unknown_share(encoded: list[np.ndarray], vocab: Vocabulary) -> float:
    unk = vocab.ids[vocab.unknown]
    total = sum(len(x) for x in encoded)
    return round(float(sum(int((x == unk).sum()) for x in encoded)) / max(total, 1), 4)


def _write_report(run_dir, metrics: dict, labels: list[str]) -> None:
    rows = [["LSTM (this run)", metrics["accuracy"], metrics["macro_f1"]]]
    majority = metrics["baseline"]["majority"]
    rows.append(["majority class", majority["accuracy"], majority["macro_f1"]])
    bow = metrics["baseline"]["bag_of_words_logreg"]
    if "skipped" not in bow:
        rows.append(["bag-of-words logistic regression", bow["accuracy"], bow["macro_f1"]])
    best_baseline = max(rows[1:], key=lambda row: row[1])
    margin = metrics["accuracy"] - best_baseline[1]
    if margin > 0:
        verdict = (f"The LSTM beats the best baseline ({best_baseline[0]}) by {100 * margin:.1f} points of "
                   f"test accuracy.")
    elif margin == 0:
        verdict = f"The LSTM does not beat the {best_baseline[0]} baseline: their test accuracies are equal."
    else:
        verdict = (f"The LSTM does not beat the {best_baseline[0]} baseline: its test accuracy is "
                   f"{100 * -margin:.1f} points lower.")
    n_test = metrics["data"]["test"]["texts"]
    standard_error = 100 * math.sqrt(max(metrics["accuracy"] * (1 - metrics["accuracy"]), 1e-12) / n_test)
    if margin != 0 and abs(100 * margin) < 2 * standard_error:
        verdict += (f" A gap under two standard errors is weak evidence either way: one standard error of a test "
                    f"accuracy over {n_test} texts is about {standard_error:.1f} points.")
    if "skipped" in bow:
        verdict += " The bag-of-words baseline was skipped: scikit-learn is not installed."
    data, cfg, fit_info = metrics["data"], metrics["config"], metrics["training"]
    direction = "bidirectional " if cfg["bidirectional"] else ""
    sections = [
        "## Results (test)\n\n" + common.markdown_table(["model", "accuracy", "macro-F1"], rows) + "\n\n" + verdict,
        f"## Data\n\n{data['dataset']}. Classes: {', '.join(labels)}. Training {data['train']['texts']} texts, "
        f"validation {data['validation']['texts']}, test {data['test']['texts']}.\n\n{metrics['split']}\n\n"
        f"Vocabulary: {data['vocabulary']} tokens (words seen at least {cfg['min_count']} times in the training "
        f"part, at most {cfg['max_vocab']}); {100 * data['unknown_token_share_test']:.1f}% of test tokens are "
        f"<unk>. Texts are cut after {cfg['max_length']} tokens ({data['texts_cut_at_max_length']} were).",
        f"## Model\n\nEmbedding {cfg['embedding']} -> {cfg['layers']}-layer {direction}{cfg['cell']} "
        f"{'GRU' if cfg['cell'] == 'gru' else 'LSTM'}, {cfg['hidden']} units per direction -> last states and "
        f"mean over steps -> dropout {cfg['dropout']} -> linear. Adam, learning rate {cfg['lr']}, batches of "
        f"{cfg['batch_size']}, {100 * cfg['word_dropout']:.0f}% of training tokens replaced by <unk> each epoch "
        f"(word dropout), {fit_info['epochs_run']} epochs; kept epoch {fit_info['best_epoch']} "
        f"({fit_info['model_selection']}). Seed {cfg['seed']}, {metrics['seconds']:.0f} s on {cfg['device']}.",
        "Files: confusion_matrix.png (test), learning_curves.png, metrics.json, model.safetensors.",
    ]
    common.write_report(run_dir, "Text classification", sections)


class Predictor:
    """A saved classify run: .predict(texts) -> labels, .predict_proba(texts) -> [N, n_classes]."""

    def __init__(self, model: SequenceClassifier, vocab: Vocabulary, labels: list[str], config: dict):
        self.model, self.vocab, self.labels, self.config = model.eval(), vocab, list(labels), config
        self.max_length = config["max_length"]

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Class probabilities [N, n_classes], columns in the order of .labels."""
        if isinstance(texts, str):
            texts = [texts]
        return _predict(self.model, encode(list(texts), self.vocab, self.max_length), torch.device("cpu"))[1]

    def predict(self, texts: list[str]) -> list[str]:
        return [self.labels[k] for k in self.predict_proba(texts).argmax(1)]

    def predict_lines(self, inputs: list[str], file: str | None = None) -> list[str]:
        """"label<TAB>probability<TAB>text" per input; `file`: a .txt of one text per line, or a CSV/TSV
        with the run's text column."""
        texts = list(inputs)
        if file is not None:
            texts += self.read_texts(file)
        p = self.predict_proba(texts)
        return [f"{self.labels[k]}\t{p[j, k]:.4f}\t{' '.join(text.split())}"
                for j, (k, text) in enumerate(zip(p.argmax(1), texts))]

    def read_texts(self, file) -> list[str]:
        encoding = self.config.get("encoding", "utf-8")
        if Path(file).suffix.lower() == ".txt":
            return [line for line in read_text(file, encoding, what="text").split("\n") if line.strip()]
        return read_table(file, encoding=encoding).strings(self.config.get("text_column", "text"))

    def inspect_input(self, value: str):
        """(first recurrent layer, its input [1, T, embedding] for `value`, the T tokens)."""
        tokens = words(value)[:self.max_length]
        if not tokens:
            raise ValueError(f"cannot inspect an empty text: {value!r}")
        ids = torch.tensor([self.vocab.encode(tokens)], dtype=torch.int64)
        with torch.no_grad():
            x = self.model.features(ids)
        return self.model.rnn, x, tokens


def load(run) -> Predictor:
    """The Predictor of a classify run folder (or its model.safetensors)."""
    config, state = runs.load_task_model(run, TASK)
    model = SequenceClassifier(config["model"])
    model.load_state_dict(state)
    return Predictor(model, Vocabulary.from_json(config["vocab"]), config["labels"], config)
