"""Translate sentences with an LSTM encoder-decoder with attention, trained on a TSV of sentence pairs.

The data file holds one pair per line, source<TAB>target (extra tab-separated fields are ignored; a
header line naming `source` and `target` columns is honoured). Sentences are split into word and
punctuation tokens (lower-cased unless --no-lowercase); training pairs with more than --max-length
tokens on either side are dropped (validation and test pairs never are). Vocabularies come from the
training pairs (words seen fewer than --min-count times become <unk>).

Without --test, the distinct source sentences are split 90/5/5 into train/validation/test at random
(seeded), so a source sentence with several translations never sits on both sides; with --test,
5% of --data's source sentences are held out for validation. The encoder is bidirectional by
default; the decoder feeds its attentional state back in (Luong et al. 2015) and is trained with
teacher forcing (--teacher-forcing < 1 sometimes feeds its own predictions). Test translations are
decoded with beam search (--beam, scores divided by length**--length-penalty) and greedily, and scored
with sacreBLEU against the test targets, next to two baselines: copying the source sentence, and a
word-by-word translation through the target word each source word co-occurs with most (Dice).
Writes model.safetensors, metrics.json, report.md, learning_curves.png and attention.png.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import plots
from ..data.errors import DataError
from ..data.pairs import Pairs, detokenize, read_pairs, tatoeba_eng_fra, tokenize
from ..data.tables import read_text
from ..data.vocab import BOS, EOS, PAD, UNK, Vocabulary
from . import common, metrics, runs, training
from .seq2seq import ATTENTION_CHOICES, Seq2Seq

TASK = "translate"
VALID_SHARE, TEST_SHARE = 0.05, 0.05
EXAMPLES = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_training_arguments(
        parser, epochs=15, hidden=64, layers=1, bidirectional=True,
        data_help="sentence pairs, source<TAB>target per line (default: embedded Tatoeba English -> French)",
        test_help="held-out pairs in the same format (default: 5%% of --data's source sentences)")
    own = parser.add_argument_group("translation")
    own.add_argument("--embedding", type=int, default=64, help="word embedding size (default 64)")
    own.add_argument("--attention", choices=ATTENTION_CHOICES, default="general",
                     help="attention score: general (h.W.m), dot (h.m) or additive (Bahdanau) (default general)")
    own.add_argument("--beam", type=int, default=5, help="beam size for the test translations; 1 = greedy (default 5)")
    own.add_argument("--length-penalty", type=float, default=1.0,
                     help="beam scores are log-probability / length**this (default 1.0; 0 = none)")
    own.add_argument("--teacher-forcing", type=float, default=1.0,
                     help="probability of feeding the true previous word in training (default 1.0)")
    own.add_argument("--max-length", type=int, default=30,
                     help="drop training pairs longer than this many tokens on either side (default 30)")
    own.add_argument("--min-count", type=int, default=1,
                     help="words seen fewer times in training become <unk> (default 1)")
    own.add_argument("--batch-size", type=int, default=64, help="pairs per batch (default 64)")
    own.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (default 0.002)")
    own.add_argument("--dropout", type=float, default=0.2, help="dropout on embeddings and outputs (default 0.2)")
    own.add_argument("--lowercase", action=argparse.BooleanOptionalAction, default=True,
                     help="lower-case both sides, and score BLEU on lower-cased references (default on)")
    own.add_argument("--encoding", default="utf-8", help="text encoding of the files (default utf-8)")


# ---------------------------------------------------------------------------- the predictor


class Translator:
    """A trained model with its vocabularies: translate(sentences) -> sentences.

    Output <unk> words are replaced by the source word they attend to most (Luong et al. 2015)."""

    def __init__(self, model: Seq2Seq, config: dict):
        self.model, self.config = model, config
        self.source_vocab = Vocabulary.from_json(config["source_vocab"])
        self.target_vocab = Vocabulary.from_json(config["target_vocab"])
        self.unk = self.target_vocab.ids[UNK]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def tokens(self, sentence: str) -> list[str]:
        tokens = tokenize(sentence, self.config["lowercase"])
        if not tokens:
            raise ValueError(f"cannot translate an empty sentence ({sentence!r})")
        return tokens

    def translate(self, sentences: list[str], beam: int | None = None) -> list[str]:
        """One translation per sentence; beam None = the run's --beam, 1 = greedy."""
        return [detokenize(tokens) for tokens, _ in self.decode(sentences, beam)]

    def translate_with_attention(self, sentence: str, beam: int | None = None) -> tuple[list[str], np.ndarray]:
        """(output tokens, attention [T_out, T_in] over the source tokens) of one sentence."""
        (tokens, attention), = self.decode([sentence], beam)
        return tokens, attention

    def decode(self, sentences: list[str], beam: int | None = None, batch_size: int = 128):
        """[(output tokens, attention float [T_out, T_in])] per sentence."""
        beam = self.config["beam"] if beam is None else beam
        common.check_positive(beam=beam)
        source = [self.tokens(s) for s in sentences]
        ids = [self.source_vocab.encode(t) for t in source]
        self.model.eval()
        decoded: list = [None] * len(ids)
        if beam == 1:
            order = sorted(range(len(ids)), key=lambda k: len(ids[k]))  # similar lengths batch together
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                x, lengths = _pad([ids[k] for k in chunk])
                steps = 2 * int(lengths.max()) + 10
                outs, atts = self.model.greedy(x.to(self.device), lengths, steps)
                for k, out, att in zip(chunk, outs, atts):
                    decoded[k] = (out, att)
        else:
            for k, row in enumerate(ids):
                x = torch.tensor([row], device=self.device)
                decoded[k] = self.model.beam_search(x, len(row), beam, 2 * len(row) + 10,
                                                    self.config["length_penalty"])
        return [self._words(out, att, src) for (out, att), src in zip(decoded, source)]

    def _words(self, ids: list[int], attention: torch.Tensor, source: list[str]):
        words = self.target_vocab.decode(ids)
        for t, k in enumerate(ids):
            if k == self.unk:
                words[t] = source[int(attention[t].argmax())]
        return words, attention.numpy()

    def predict_lines(self, inputs: list[str], file: str | None = None) -> list[str]:
        """One translation per input sentence (with file: per non-blank line of the file)."""
        if file is not None:
            encoding = self.config.get("encoding", "utf-8")      # the training files' encoding
            inputs = [line.strip() for line in read_text(file, encoding, what="sentences, one per line").splitlines()
                      if line.strip()]
        return self.translate(list(inputs))

    def inspect_input(self, value: str):
        """(encoder layer, source embeddings [1, T, E], source tokens) of one sentence."""
        tokens = self.tokens(value)
        ids = torch.tensor([self.source_vocab.encode(tokens)], device=self.device)
        with torch.no_grad():
            x = self.model.embed_source(ids)
        return self.model.encoder, x, tokens


def load(run) -> Translator:
    config, state = runs.load_task_model(run, TASK)
    model = Seq2Seq(config["model"])
    model.load_state_dict(state)
    model.eval()
    return Translator(model, config)


# ---------------------------------------------------------------------------- training


def train(data=None, test=None, out=None, *, seed=0, epochs=15, hidden=64, layers=1, cell="vanilla",
          bidirectional=True, device="auto", resume=False, progress=True, log=print, embedding=64,
          attention="general", beam=5, length_penalty=1.0, teacher_forcing=1.0, max_length=30, min_count=1,
          batch_size=64, lr=2e-3, dropout=0.2, lowercase=True, encoding="utf-8") -> runs.TaskResult:
    """Train on pairs (a file, or the embedded Tatoeba English -> French set), test, write the run folder."""
    common.check_positive(epochs=epochs, hidden=hidden, layers=layers, embedding=embedding, beam=beam,
                          max_length=max_length, min_count=min_count, batch_size=batch_size)
    if not 0.0 <= teacher_forcing <= 1.0:
        raise ValueError(f"--teacher-forcing must be a probability in [0, 1], got {teacher_forcing}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"--dropout must be in [0, 1), got {dropout}")
    if length_penalty < 0:
        raise ValueError(f"--length-penalty must be 0 or more, got {length_penalty}")
    began = time.perf_counter()
    training.seed_everything(seed)
    dev = training.resolve_device(device)
    pairs = read_pairs(data, encoding) if data is not None else tatoeba_eng_fra()
    train_pairs, val_pairs, test_pairs, split = _split(pairs, read_pairs(test, encoding) if test else None,
                                                      lowercase, seed)
    train_tok, dropped = _tokenized(train_pairs, lowercase, max_length)
    val_tok, _ = _tokenized(val_pairs, lowercase, max_length=None)
    if not train_tok:
        raise DataError(pairs.path, f"no training pair has at most {max_length} tokens on both sides; "
                                    f"raise --max-length")
    specials = (PAD, UNK, BOS, EOS)
    source_vocab = Vocabulary.build((s for s, _ in train_tok), specials, min_count)
    target_vocab = Vocabulary.build((t for _, t in train_tok), specials, min_count)
    model_config = dict(source_size=len(source_vocab), target_size=len(target_vocab),
                        bos=target_vocab.ids[BOS], eos=target_vocab.ids[EOS], embedding=embedding, hidden=hidden,
                        layers=layers, cell=cell, bidirectional=bidirectional, attention=attention, dropout=dropout)
    config = dict(model=model_config, source_vocab=source_vocab.to_json(), target_vocab=target_vocab.to_json(),
                  lowercase=lowercase, beam=beam, length_penalty=length_penalty, max_length=max_length,
                  encoding=encoding)
    model = Seq2Seq(model_config)
    translator = Translator(model, config)
    train_ids = _encode(train_tok, source_vocab, target_vocab)
    val_ids = _encode(val_tok, source_vocab, target_vocab)
    run_dir = runs.make_run_dir(TASK, out)
    log(f"translate: {len(train_tok)} training pairs ({dropped} longer than {max_length} tokens dropped), "
        f"{len(val_pairs)} validation, {len(test_pairs)} test; vocabularies {len(source_vocab)} -> "
        f"{len(target_vocab)} words")

    def batches(epoch):
        return _batches(train_ids, batch_size, np.random.default_rng([seed, epoch]))

    def loss(m, batch):
        source, lengths, target_in, target_out = batch
        logits = m(source, lengths, target_in, teacher_forcing)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target_out.reshape(-1), ignore_index=0)

    def validate(m):
        val_loss = _mean_loss(m, val_ids, dev)
        return val_loss, metrics.bleu(_translate_pairs(translator, val_pairs, 1), _references(val_pairs, lowercase))

    checkpoint = run_dir / "checkpoint.safetensors"
    history = training.fit(model, batches=batches, loss=loss, validate=validate, metric_name="BLEU (greedy)",
                           higher_is_better=True, epochs=epochs, lr=lr, device=dev, checkpoint=checkpoint,
                           resume=resume, progress=progress, log=log, desc=TASK)

    references = _references(test_pairs, lowercase)
    distinct = list(dict.fromkeys(test_pairs.sources))
    greedy = _translate_pairs(translator, test_pairs, 1)
    beamed = _translate_pairs(translator, test_pairs, beam) if beam > 1 else greedy
    bleu_greedy, bleu_beam = metrics.bleu(greedy, references), metrics.bleu(beamed, references)
    test_tok, _ = _tokenized(test_pairs, lowercase, max_length=None)
    perplexity = float(np.exp(_mean_loss(model, _encode(test_tok, source_vocab, target_vocab), dev)))
    dictionary = word_by_word_dictionary(train_tok)
    baseline = {
        "copy_source": {"bleu": metrics.bleu(_cased(test_pairs.sources, lowercase), references)},
        "word_by_word": {"bleu": metrics.bleu(
            [detokenize([dictionary.get(w, w) for w in s]) for s, _ in test_tok], references)},
    }
    figures = {"bleu": bleu_beam, "bleu_greedy": bleu_greedy, "bleu_beam": bleu_beam, "perplexity": perplexity,
               "beam": beam}

    runs.save_model(run_dir, TASK, model, config)
    plots.learning_curves(history, run_dir / "learning_curves.png", title="translation: loss per target word")
    example = next((s for s in distinct if 4 <= len(tokenize(s)) <= 15), distinct[0])
    words, weights = translator.translate_with_attention(example)
    plots.heatmap(weights, run_dir / "attention.png", title=f"attention (beam {beam}), a test sentence",
                  xlabels=translator.tokens(example), ylabels=words, xlabel="source", ylabel="translation")
    data_info = {"train": str(pairs.path), "test": str(test_pairs.path), "train_pairs": len(train_tok),
                 "dropped_longer_than_max_length": dropped, "validation_pairs": len(val_pairs),
                 "test_pairs": len(test_pairs), "test_sources": len(distinct),
                 "source_vocabulary": len(source_vocab), "target_vocabulary": len(target_vocab)}
    run_config = dict(seed=seed, epochs=epochs, hidden=hidden, layers=layers, cell=cell,
                      bidirectional=bidirectional,
                      embedding=embedding, attention=attention, beam=beam, length_penalty=length_penalty,
                      teacher_forcing=teacher_forcing, max_length=max_length, min_count=min_count,
                      batch_size=batch_size, lr=lr, dropout=dropout, lowercase=lowercase, device=str(dev),
                      best_epoch=history.best_epoch)
    result = {**figures, "baseline": baseline, "data": data_info, "split": split,
              "seconds": round(time.perf_counter() - began, 1), "config": run_config}
    runs.write_metrics(run_dir, result)
    rows = [(test_pairs.sources[k], test_pairs.targets[k], beamed[k])
            for k in range(min(EXAMPLES, len(test_pairs)))]
    _write_report(run_dir, figures, baseline, data_info, split, rows, run_config, lowercase)
    if checkpoint.exists():
        checkpoint.unlink()
    return runs.TaskResult(TASK, run_dir, result, model, history)


# ---------------------------------------------------------------------------- data handling


def _split(pairs: Pairs, test: Pairs | None, lowercase: bool, seed: int):
    """(train, validation, test, how) with whole source sentences on one side of each cut."""
    key = [" ".join(tokenize(s, lowercase)) for s in pairs.sources]
    distinct = sorted(set(key))
    needed = 2 if test is not None else 3
    if len(distinct) < needed:
        raise DataError(pairs.path, f"has {len(distinct)} distinct source sentence(s); at least {needed} are needed "
                                    f"to hold some out for {'validation' if test else 'validation and test'}")
    order = np.random.default_rng(seed).permutation(len(distinct))
    n_val = max(1, round(VALID_SHARE * len(distinct)))
    n_test = 0 if test is not None else max(1, round(TEST_SHARE * len(distinct)))
    part = {distinct[k]: (0 if j < n_test else 1 if j < n_test + n_val else 2) for j, k in enumerate(order)}
    groups = [[k for k, s in enumerate(key) if part[s] == p] for p in range(3)]
    held, val, rest = (pairs.subset(g) for g in groups)
    if test is not None:
        how = (f"trained on {pairs.path}, tested on {test.path}; {n_val} of {len(distinct)} distinct source sentences "
               f"of the training file (seed {seed}) with all their translations held out for validation")
        return rest, val, test, how
    how = (f"random split of the {len(distinct)} distinct source sentences (seed {seed}): "
           f"{len(distinct) - n_val - n_test} train / {n_val} validation / {n_test} test, each source sentence with "
           f"all its translations on one side (so no test source was seen in training)")
    return rest, val, held, how


def _tokenized(pairs: Pairs, lowercase: bool, max_length: int | None):
    """([(source tokens, target tokens)], number dropped for being longer than max_length)."""
    out = [(tokenize(s, lowercase), tokenize(t, lowercase)) for s, t in zip(pairs.sources, pairs.targets)]
    if max_length is None:
        return out, 0
    kept = [p for p in out if len(p[0]) <= max_length and len(p[1]) <= max_length]
    return kept, len(out) - len(kept)


def _encode(tokenized, source_vocab: Vocabulary, target_vocab: Vocabulary):
    """[(source ids, target ids with <s> first and </s> last)]."""
    bos, eos = target_vocab.ids[BOS], target_vocab.ids[EOS]
    return [(source_vocab.encode(s), [bos, *target_vocab.encode(t), eos]) for s, t in tokenized]


def _pad(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Id lists -> (padded [B, T_max] with 0 after each end, lengths [B])."""
    lengths = torch.tensor([len(r) for r in rows])
    out = torch.zeros(len(rows), int(lengths.max()), dtype=torch.long)
    for k, r in enumerate(rows):
        out[k, :len(r)] = torch.tensor(r)
    return out, lengths


def _collate(items):
    """-> (source [B, S], lengths [B], target_in [B, T], target_out [B, T])."""
    source, lengths = _pad([s for s, _ in items])
    target, _ = _pad([t for _, t in items])
    return source, lengths, target[:, :-1], target[:, 1:]


def _batches(items, batch_size: int, rng: np.random.Generator):
    """Shuffled batches of similar source lengths (pools of 20 batches sorted by length), less padding."""
    order = rng.permutation(len(items))
    pool = 20 * batch_size
    chunks = []
    for start in range(0, len(order), pool):
        ranked = sorted(order[start:start + pool], key=lambda k: len(items[k][0]))
        chunks += [ranked[k:k + batch_size] for k in range(0, len(ranked), batch_size)]
    for j in rng.permutation(len(chunks)):
        yield _collate([items[k] for k in chunks[j]])


def _mean_loss(model: Seq2Seq, items, device: torch.device, batch_size: int = 256) -> float:
    """Cross-entropy per target word (nats), teacher forced, in eval mode."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            source, lengths, target_in, target_out = training.to_device(
                _collate(items[start:start + batch_size]), device)
            logits = model(source, lengths, target_in)
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target_out.reshape(-1),
                                           ignore_index=0, reduction="sum"))
            count += int((target_out != 0).sum())
    return total / max(count, 1)


def _translate_pairs(translator: Translator, pairs: Pairs, beam: int) -> list[str]:
    """The translation of each pair's source, each distinct source decoded once."""
    distinct = list(dict.fromkeys(pairs.sources))
    translated = dict(zip(distinct, translator.translate(distinct, beam=beam)))
    return [translated[s] for s in pairs.sources]


def _cased(sentences: list[str], lowercase: bool) -> list[str]:
    return [s.lower() for s in sentences] if lowercase else list(sentences)


def _references(pairs: Pairs, lowercase: bool) -> list[str]:
    """The target sentences as BLEU compares them (lower-cased when the model is)."""
    return _cased(pairs.targets, lowercase)


def word_by_word_dictionary(tokenized) -> dict[str, str]:
    """The baseline's dictionary: each source word -> the target word with the highest Dice coefficient
    2 c(s, t) / (c(s) + c(t)), counting the training pairs each word (pair of words) occurs in."""
    source_count, target_count, both = Counter(), Counter(), Counter()
    for source, target in tokenized:
        s_set, t_set = set(source), set(target)
        source_count.update(s_set)
        target_count.update(t_set)
        both.update((s, t) for s in s_set for t in t_set)
    best: dict[str, tuple[float, str]] = {}
    for (s, t), n in both.items():
        score = (2 * n / (source_count[s] + target_count[t]), t)
        if s not in best or score > best[s]:
            best[s] = score
    return {s: t for s, (_, t) in best.items()}


# ---------------------------------------------------------------------------- the report


def _write_report(run_dir: Path, figures: dict, baseline: dict, data: dict, split: str, rows, config: dict,
                  lowercase: bool) -> None:
    best_name = max(baseline, key=lambda k: baseline[k]["bleu"])
    best = baseline[best_name]["bleu"]
    verdict = ("beats" if figures["bleu"] > best else "does NOT beat")
    table = common.markdown_table(
        ["system", "test BLEU"],
        [(f"LSTM encoder-decoder, beam {figures['beam']}", round(figures["bleu_beam"], 2)),
         ("LSTM encoder-decoder, greedy", round(figures["bleu_greedy"], 2)),
         ("baseline: copy the source sentence", round(baseline["copy_source"]["bleu"], 2)),
         ("baseline: word by word (Dice dictionary)", round(baseline["word_by_word"]["bleu"], 2))])
    examples = common.markdown_table(["source", "reference", "model"],
                                     [tuple(c.replace("|", "\\|") for c in row) for row in rows])
    model = (f"{config['cell']} {'bidirectional ' if config['bidirectional'] else ''}encoder, {config['layers']} "
             f"layer(s) of {config['hidden']} units, {config['attention']} attention with input feeding, "
             f"embeddings {config['embedding']}; best validation epoch {config['best_epoch']} of {config['epochs']}")
    common.write_report(run_dir, "Translation: LSTM encoder-decoder with attention", [
        f"The model **{verdict}** the best baseline ({best_name.replace('_', ' ')}): test BLEU "
        f"{figures['bleu']:.2f} against {best:.2f}. Test perplexity (teacher forced) {figures['perplexity']:.2f}.",
        table,
        f"BLEU is corpus sacreBLEU (13a tokenisation) of each test pair's translation against its own target "
        f"sentence{', both lower-cased' if lowercase else ''}; a source with several translations counts once "
        f"per translation.",
        f"## Data\n\n{data['train_pairs']} training pairs ({data['dropped_longer_than_max_length']} dropped for "
        f"having more than {config['max_length']} tokens on a side), {data['validation_pairs']} validation, "
        f"{data['test_pairs']} test pairs ({data['test_sources']} distinct source sentences). "
        f"Vocabularies: {data['source_vocabulary']} source and {data['target_vocabulary']} target words. "
        f"Split: {split}.",
        f"## Model\n\n{model}.",
        f"## Examples (test)\n\n{examples}",
        "Pictures: learning_curves.png (loss per target word and validation BLEU per epoch), attention.png "
        "(the attention weights of one test translation).",
    ])
