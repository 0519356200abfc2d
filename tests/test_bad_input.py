"""Bad input raises ValueError / TypeError whose message names what was expected and what came."""

from __future__ import annotations

import pytest
import torch

import lstmkit.nn as lnn
from lstmkit import ops

I, H, T, B = 3, 4, 5, 2


@pytest.fixture(params=["LSTM", "GRU"])
def layer(request):
    return getattr(lnn, request.param)(I, H, num_layers=2)


def test_wrong_ndim(layer):
    with pytest.raises(ValueError, match=r"3-D .*got 4-D with shape \(1, 5, 2, 3\)"):
        layer(torch.randn(1, T, B, I))
    with pytest.raises(ValueError, match=r"got 1-D with shape \(3,\)"):
        layer(torch.randn(I))


def test_wrong_feature_size(layer):
    with pytest.raises(ValueError, match=r"input_size=3 .*got shape \(5, 2, 7\) \(7 features\)"):
        layer(torch.randn(T, B, 7))


def test_hidden_state_of_wrong_shape():
    lstm = lnn.LSTM(I, H, num_layers=2, proj_size=2)
    good_c = torch.zeros(2, B, H)
    with pytest.raises(ValueError, match=r"h_0 must have shape \(2, 2, 2\).*got \(2, 2, 4\)"):
        lstm(torch.randn(T, B, I), (torch.zeros(2, B, H), good_c))
    with pytest.raises(ValueError, match=r"c_0 must have shape \(2, 2, 4\).*got \(1, 2, 4\)"):
        lstm(torch.randn(T, B, I), (torch.zeros(2, B, 2), torch.zeros(1, B, H)))
    with pytest.raises(ValueError, match=r"tuple \(h_0, c_0\)"):
        lstm(torch.randn(T, B, I), torch.zeros(2, B, 2))
    gru = lnn.GRU(I, H)
    with pytest.raises(ValueError, match=r"h_0 must have shape \(1, 4\).*unbatched.*got \(1, 1, 4\)"):
        gru(torch.randn(T, I), torch.zeros(1, 1, H))


def test_lengths_longer_than_the_sequence(layer):
    with pytest.raises(ValueError, match=r"T=5, got lengths\[1\]=6"):
        layer(torch.randn(T, B, I), lengths=[5, 6])


@pytest.mark.parametrize("bad", [[0, 3], [3, -1]])
def test_zero_or_negative_lengths(layer, bad):
    with pytest.raises(ValueError, match=r"lengths must be >= 1, got lengths\[\d\]=(0|-1)"):
        layer(torch.randn(T, B, I), lengths=bad)


def test_lengths_of_wrong_count_or_type(layer):
    with pytest.raises(ValueError, match=r"batch size 2.*got shape \(3,\)"):
        layer(torch.randn(T, B, I), lengths=[1, 2, 3])
    with pytest.raises(TypeError, match="integers.*float"):
        layer(torch.randn(T, B, I), lengths=torch.tensor([1.5, 2.0]))


def test_non_float_dtype(layer):
    with pytest.raises(TypeError, match=r"floating-point tensor \(torch.float32\), got dtype torch.int64"):
        layer(torch.ones(T, B, I, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.float64 but the layer's parameters are torch.float32"):
        layer(torch.ones(T, B, I, dtype=torch.float64))
    with pytest.raises(TypeError, match="must be a torch.Tensor, got list"):
        layer([[1.0, 2.0, 3.0]])


def test_unknown_cell_and_activation():
    with pytest.raises(ValueError, match=r"unknown cell 'peep'.*\['vanilla', 'peephole', 'cifg', 'layernorm'\]"):
        lnn.LSTM(I, H, cell="peep")
    with pytest.raises(ValueError, match=r"unknown activation 'softsign'.*expected one of"):
        lnn.GRU(I, H, activation="softsign")
    with pytest.raises(ValueError, match="unknown cell"):
        lnn.LSTMCell(I, H, cell="gru")
    with pytest.raises(ValueError, match="unknown cell"):
        ops.lstm(torch.zeros(1, 1, 1), torch.zeros(1, 1), torch.zeros(1, 1),
                 ops.LSTMWeights(torch.zeros(4, 1), torch.zeros(4, 1)), cell="nope")


@pytest.mark.parametrize("kwargs,match", [
    (dict(proj_size=4), r"proj_size must be an integer in \[0, hidden_size=4\), got 4"),
    (dict(dropout=1.5), r"dropout must be a number in \[0, 1\], got 1.5"),
    (dict(recurrent_dropout=1.0), r"recurrent_dropout must be a number in \[0, 1\), got 1.0"),
    (dict(zoneout=(0.1, 0.2, 0.3)), r"pair \(rate_h, rate_c\), got \(0.1, 0.2, 0.3\)"),
    (dict(num_layers=0), r"num_layers must be a positive integer, got 0"),
])
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lnn.LSTM(I, H, **kwargs)


def test_cells_check_their_input():
    cell = lnn.LSTMCell(I, H)
    with pytest.raises(ValueError, match=r"\[batch, 3\] or \[3\].*got shape \(2, 5\)"):
        cell(torch.randn(B, 5))
    with pytest.raises(ValueError, match=r"hx\[1\] must have shape \(2, 4\), got \(2, 3\)"):
        cell(torch.randn(B, I), (torch.zeros(B, H), torch.zeros(B, 3)))
    with pytest.raises(TypeError, match="got dtype torch.int32"):
        lnn.GRUCell(I, H)(torch.ones(B, I, dtype=torch.int32))


def test_packed_input_refuses_lengths():
    packed = torch.nn.utils.rnn.pack_sequence([torch.randn(3, I), torch.randn(2, I)])
    with pytest.raises(ValueError, match="PackedSequence carries its own lengths"):
        lnn.LSTM(I, H)(packed, lengths=[3, 2])
