"""An attentional encoder-decoder on lstmkit.nn layers (Luong et al. 2015), with greedy and beam decoding.

    source ids [B, S] -> embedding [B, S, E] -> encoder (lstmkit.nn LSTM/GRU, bidirectional by default,
        lengths honoured) -> memory [B, S, M], M = hidden * directions
    decoder (lstmkit.nn LSTM/GRU of width M, run one step at a time through .step()), per target step t:
        input  = [embedding of y_{t-1}; attentional state of step t-1]          (input feeding)
        query  = the decoder's top output h_t [B, M]
        a_t    = softmax over real source steps of score(h_t, memory)            [B, S]
                 general: h_t . W m_j,  dot: h_t . m_j,  additive: v . tanh(W m_j + U h_t)
        state  = tanh(W_c [a_t . memory; h_t])                                   [B, M]
        logits = W_o dropout(state)                                              [B, V_target]
    The decoder starts from tanh(linear) bridges of the encoder's final states, layer by layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .common import recurrent

ATTENTION_CHOICES = ("general", "dot", "additive")


@dataclass
class Memory:
    """What the decoder attends to: outputs [B, S, M], keys [B, S, M] (scored against queries),
    mask [B, S] (True on real steps)."""

    outputs: Tensor
    keys: Tensor
    mask: Tensor

    def select(self, index: Tensor) -> "Memory":
        return Memory(self.outputs[index], self.keys[index], self.mask[index])


class Seq2Seq(nn.Module):
    """config keys: source_size, target_size (vocabulary sizes, id 0 = padding), bos, eos (target ids),
    embedding, hidden, layers, cell, bidirectional, attention, dropout."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = dict(config)
        c = self.config
        if c["attention"] not in ATTENTION_CHOICES:
            raise ValueError(f"--attention must be one of {', '.join(ATTENTION_CHOICES)}, got {c['attention']!r}")
        directions = 2 if c["bidirectional"] else 1
        self.width = width = c["hidden"] * directions
        self.is_lstm = c["cell"] != "gru"
        self.source_embedding = nn.Embedding(c["source_size"], c["embedding"], padding_idx=0)
        self.target_embedding = nn.Embedding(c["target_size"], c["embedding"], padding_idx=0)
        self.encoder = recurrent(c["cell"], c["embedding"], c["hidden"], c["layers"], c["bidirectional"], c["dropout"])
        self.decoder = recurrent(c["cell"], c["embedding"] + width, width, c["layers"], False, c["dropout"])
        self.bridge_h = nn.Linear(width, width)
        self.bridge_c = nn.Linear(width, width) if self.is_lstm else None
        if c["attention"] == "general":
            self.key = nn.Linear(width, width, bias=False)
        elif c["attention"] == "additive":
            self.key = nn.Linear(width, width, bias=False)
            self.query = nn.Linear(width, width)
            self.energy = nn.Linear(width, 1, bias=False)
        self.combine = nn.Linear(2 * width, width)
        self.out = nn.Linear(width, c["target_size"])
        self.dropout = nn.Dropout(c["dropout"])

    # ------------------------------------------------------------------ encoder

    def embed_source(self, source: Tensor) -> Tensor:
        """[B, S] ids -> [B, S, E]: what the encoder's first layer reads."""
        return self.source_embedding(source)

    def encode(self, source: Tensor, lengths: Tensor):
        """source [B, S] ids, lengths [B] -> (Memory, the decoder's initial state)."""
        outputs, final = self.encoder(self.dropout(self.embed_source(source)), lengths=lengths.cpu())
        steps = torch.arange(source.shape[1], device=source.device)
        mask = steps[None, :] < lengths.to(source.device)[:, None]
        keys = outputs if self.config["attention"] == "dot" else self.key(outputs)
        if self.is_lstm:
            state = (self._bridge(final[0], self.bridge_h), self._bridge(final[1], self.bridge_c))
        else:
            state = self._bridge(final, self.bridge_h)
        return Memory(outputs, keys, mask), state

    def _bridge(self, final: Tensor, linear: nn.Linear) -> Tensor:
        """Encoder final state [L * D, B, H] -> decoder state [L, B, D * H] (directions side by side)."""
        L, D = self.config["layers"], 2 if self.config["bidirectional"] else 1
        B, H = final.shape[1], final.shape[2]
        per_layer = final.view(L, D, B, H).permute(0, 2, 1, 3).reshape(L, B, D * H)
        return torch.tanh(linear(per_layer))

    # ------------------------------------------------------------------ decoder

    def step(self, previous: Tensor, feed: Tensor, state, memory: Memory):
        """One decoder step. previous [B] target ids, feed [B, M] the last attentional state.
        Returns (attentional state [B, M], new decoder state, attention [B, S])."""
        x = torch.cat([self.dropout(self.target_embedding(previous)), feed], dim=-1)
        query, state = self.decoder.step(x, state)                                   # [B, M]
        if self.config["attention"] == "additive":
            scores = self.energy(torch.tanh(memory.keys + self.query(query)[:, None, :])).squeeze(-1)
        else:
            scores = torch.bmm(memory.keys, query.unsqueeze(-1)).squeeze(-1)          # [B, S]
        attention = torch.softmax(scores.masked_fill(~memory.mask, float("-inf")), dim=-1)
        context = torch.bmm(attention.unsqueeze(1), memory.outputs).squeeze(1)      # [B, M]
        attentional = torch.tanh(self.combine(torch.cat([context, query], dim=-1)))
        return attentional, state, attention

    def logits(self, attentional: Tensor) -> Tensor:
        """[..., M] attentional states -> [..., V_target] logits."""
        return self.out(self.dropout(attentional))

    def forward(self, source: Tensor, lengths: Tensor, target_in: Tensor, teacher_forcing: float = 1.0) -> Tensor:
        """Training pass: source [B, S], lengths [B], target_in [B, T] (<s> then the target) ->
        logits [B, T, V_target]. With teacher_forcing < 1, each sentence's input at each step is
        the gold token with that probability, else the model's own previous prediction."""
        memory, state = self.encode(source, lengths)
        feed = memory.outputs.new_zeros(source.shape[0], self.width)
        previous = target_in[:, 0]
        states = []
        for t in range(target_in.shape[1]):
            feed, state, _ = self.step(previous, feed, state, memory)
            states.append(feed)
            if t + 1 < target_in.shape[1]:
                previous = target_in[:, t + 1]
                if teacher_forcing < 1.0:
                    own = self.logits(feed).argmax(-1).detach()
                    gold = torch.rand(previous.shape, device=previous.device) < teacher_forcing
                    previous = torch.where(gold | (previous == 0), previous, own)
        return self.logits(torch.stack(states, dim=1))

    # ------------------------------------------------------------------ decoding

    @torch.no_grad()
    def greedy(self, source: Tensor, lengths: Tensor, max_steps: int) -> tuple[list[list[int]], list[Tensor]]:
        """Best token at each step, a batch at once. Returns per sentence (ids without <s>/</s>,
        attention [T_out, S_b])."""
        memory, state = self.encode(source, lengths)
        B = source.shape[0]
        feed = memory.outputs.new_zeros(B, self.width)
        previous = torch.full((B,), self.config["bos"], dtype=torch.long, device=source.device)
        done = torch.zeros(B, dtype=torch.bool, device=source.device)
        tokens, attentions = [], []
        for _ in range(max_steps):
            feed, state, attention = self.step(previous, feed, state, memory)
            previous = self.logits(feed).argmax(-1)
            tokens.append(previous)
            attentions.append(attention)
            done |= previous == self.config["eos"]
            if bool(done.all()):
                break
        ids, att = torch.stack(tokens, 1).tolist(), torch.stack(attentions, 1).cpu()
        out = []
        for b in range(B):
            row = ids[b]
            n = row.index(self.config["eos"]) if self.config["eos"] in row else len(row)
            out.append((row[:n], att[b, :n, :int(lengths[b])]))
        return [o[0] for o in out], [o[1] for o in out]

    @torch.no_grad()
    def beam_search(self, source: Tensor, length: int, beam: int, max_steps: int,
                    length_penalty: float = 1.0) -> tuple[list[int], Tensor]:
        """One sentence, source [1, S]: keep the `beam` likeliest prefixes at each step; a prefix that
        emits </s> is finished. Stops when `beam` are finished (or after max_steps) and returns the
        finished one (any kept one if none finished) with the best log-probability / length**penalty,
        length counting </s>: (ids without <s>/</s>, attention [T_out, S])."""
        memory, state = self.encode(source, torch.tensor([length]))
        eos = self.config["eos"]
        device = source.device
        scores = torch.zeros(1, device=device)
        prefixes = torch.full((1, 1), self.config["bos"], dtype=torch.long, device=device)
        history = torch.zeros(1, 0, source.shape[1], device=device)                  # [k, t, S]
        feed = memory.outputs.new_zeros(1, self.width)
        finished: list[tuple[float, list[int], Tensor]] = []
        for t in range(max_steps):
            k = prefixes.shape[0]
            expanded = memory.select(torch.zeros(k, dtype=torch.long, device=device))
            feed, state, attention = self.step(prefixes[:, -1], feed, state, expanded)
            total = scores[:, None] + torch.log_softmax(self.logits(feed), dim=-1)    # [k, V]
            best, flat = total.view(-1).topk(min(2 * beam, total.numel()))
            rows, cols = flat // total.shape[1], flat % total.shape[1]
            keep = []
            for score, row, col in zip(best.tolist(), rows.tolist(), cols.tolist()):
                if col == eos:
                    ids = prefixes[row, 1:].tolist()
                    finished.append((score / (len(ids) + 1) ** length_penalty, ids, history[row].cpu()))
                else:
                    keep.append((score, row, col))
                if len(keep) == beam:
                    break
            if len(finished) >= beam or not keep:
                break
            index = torch.tensor([r for _, r, _ in keep], device=device)
            scores = torch.tensor([s for s, _, _ in keep], device=device)
            prefixes = torch.cat([prefixes[index], torch.tensor([[c] for _, _, c in keep], device=device)], 1)
            history = torch.cat([history[index], attention[index].unsqueeze(1)], 1)
            feed = feed[index]
            state = tuple(s[:, index] for s in state) if isinstance(state, tuple) else state[:, index]
        if not finished:
            for k in range(prefixes.shape[0]):
                ids = prefixes[k, 1:].tolist()
                finished.append((float(scores[k]) / max(len(ids), 1) ** length_penalty, ids, history[k].cpu()))
        _, ids, att = max(finished, key=lambda f: f[0])
        return ids, att
