"""Same numbers as real Keras: layers given Keras's weights give Keras's outputs.

The fixtures were made by real Keras 3 (JAX backend, independent of torch) with
fixtures/make_fixtures.py: random inputs, masks (full, post-padded, pre-padded, with holes),
initial states and random weights in Keras's layout, and the outputs Keras computed.
"""

import numpy as np
import pytest
import torch

import lstmkit.keras as keras
from lstmkit.keras import layers

from keras_testutil import FIXTURES, case_list

TOL = 1e-5


def build_layer(meta):
    cfg = dict(meta["config"])
    cls = meta["class"]
    if cls == "Bidirectional":
        inner = getattr(layers, cfg["layer"])(**cfg["layer_config"])
        return layers.Bidirectional(inner, merge_mode=cfg["merge_mode"])
    return getattr(layers, cls)(**cfg)


def run_case(case, arrays, meta):
    info = meta["cases"][case]
    layer = build_layer(info)
    x = torch.from_numpy(arrays[f"{case}/x"])
    mask = arrays.get(f"{case}/mask")
    mask = None if mask is None else torch.from_numpy(mask)
    init = [torch.from_numpy(a) for a in case_list(arrays, case, "initial_state")] or None
    kwargs = {"mask": mask} if mask is not None else {}
    if init is not None:
        kwargs["initial_state"] = init
    layer(x, **kwargs)  # build
    layer.set_weights(case_list(arrays, case, "weights"))
    out = layer(x, **kwargs)
    outs = out if isinstance(out, (list, tuple)) else [out]
    return [o.detach().numpy() for o in outs], case_list(arrays, case, "outputs")


def all_cases():
    import json
    return sorted(json.loads((FIXTURES / "keras_meta.json").read_text())["cases"])


@pytest.mark.parametrize("case", all_cases())
def test_layer_matches_keras(case, keras_arrays, keras_meta):
    got, want = run_case(case, keras_arrays, keras_meta)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        assert np.abs(g - w).max() < TOL, f"{case}: max abs difference {np.abs(g - w).max():.2e}"


def test_parity_cases_are_not_trivial(keras_arrays, keras_meta):
    """The oracle has teeth: perturbing one weight moves the output beyond the tolerance."""
    case = "lstm_seq_state_masked"
    info = keras_meta["cases"][case]
    layer = build_layer(info)
    x = torch.from_numpy(keras_arrays[f"{case}/x"])
    mask = torch.from_numpy(keras_arrays[f"{case}/mask"])
    layer(x, mask=mask)
    weights = case_list(keras_arrays, case, "weights")
    weights[1] = weights[1].copy()
    weights[1][0, 7] += 0.01  # one recurrent weight of the forget gate
    layer.set_weights(weights)
    got = layer(x, mask=mask)[0].detach().numpy()
    assert np.abs(got - keras_arrays[f"{case}/outputs_0"]).max() > 10 * TOL


def test_get_weights_round_trips_keras_layout(keras_arrays, keras_meta):
    for case in ("lstm_seq_state", "gru_seq_state", "bidirectional_lstm_concat", "simple_rnn"):
        layer = build_layer(keras_meta["cases"][case])
        layer(torch.from_numpy(keras_arrays[f"{case}/x"]))
        want = case_list(keras_arrays, case, "weights")
        layer.set_weights(want)
        got = layer.get_weights()
        assert [g.shape for g in got] == [w.shape for w in want]
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


def test_keras_text_model_from_weights_h5(keras_arrays):
    """A Keras-saved .weights.h5 loads into the same model built in lstmkit (names differ)."""
    pytest.importorskip("h5py")
    model = keras.Sequential([
        keras.Input((None,), dtype="int32"),
        layers.Embedding(50, 8, mask_zero=True),
        layers.Bidirectional(layers.LSTM(5, return_sequences=True)),
        layers.GRU(4),
        layers.Dense(3, activation="softmax"),
    ])
    model.load_weights(FIXTURES / "keras_text.weights.h5")
    y = model.predict(keras_arrays["h5_text/x"], verbose=0)
    assert np.abs(y - keras_arrays["h5_text/y"]).max() < TOL


def test_keras_seq2seq_from_weights_h5(keras_arrays):
    pytest.importorskip("h5py")
    enc_in = keras.Input((None, 5))
    _, sh, sc = layers.LSTM(6, return_state=True)(enc_in)
    dec_in = keras.Input((None, 4))
    dec_seq, _, _ = layers.LSTM(6, return_sequences=True, return_state=True)(dec_in, initial_state=[sh, sc])
    out = layers.Dense(4, activation="softmax")(dec_seq)
    model = keras.Model([enc_in, dec_in], out)
    model.load_weights(FIXTURES / "keras_seq2seq.weights.h5")
    y = model.predict([keras_arrays["h5_seq2seq/x_0"], keras_arrays["h5_seq2seq/x_1"]], verbose=0)
    assert np.abs(y - keras_arrays["h5_seq2seq/y"]).max() < TOL


def test_h5_with_wrong_layers_is_refused():
    pytest.importorskip("h5py")
    model = keras.Sequential([keras.Input((None, 3)), layers.LSTM(4), layers.Dense(1)])
    with pytest.raises(ValueError, match="weights for layers"):
        model.load_weights(FIXTURES / "keras_text.weights.h5")


@pytest.mark.parametrize("name", ["seed_000", "seed_001", "seed_003", "assorted"])
def test_parameter_counts_and_shapes_equal_keras(name, keras_meta):
    want = keras_meta["summaries"][name]
    builders = {
        "seed_000": lambda: keras.Sequential([
            keras.Input((40,), dtype="int32"), layers.Embedding(10000, 64),
            layers.Bidirectional(layers.LSTM(64, return_sequences=True)), layers.Bidirectional(layers.LSTM(32)),
            layers.Dense(64, activation="relu"), layers.Dense(10)]),
        "seed_001": lambda: keras.Sequential([keras.Input((100, 10)), layers.LSTM(50, activation="relu"),
                                              layers.Dense(1)]),
        "seed_003": lambda: keras.Sequential([keras.Input((8, 8)), layers.LSTM(50),
                                              layers.Dense(10, activation="softmax")]),
        "assorted": lambda: keras.Sequential([
            keras.Input((12, 3)), layers.Masking(), layers.GRU(7, return_sequences=True),
            layers.TimeDistributed(layers.Dense(2)), layers.Flatten(), layers.RepeatVector(3),
            layers.SimpleRNN(4, return_sequences=True), layers.Bidirectional(layers.GRU(3), merge_mode="sum"),
            layers.Dropout(0.5), layers.Dense(1)]),
    }
    model = builders[name]()
    got = [{"class": type(l).__name__, "params": l.count_params(), "output_shape": list(l.output_shape)}
           for l in model.layers]
    assert got == [{k: w[k] for k in ("class", "params", "output_shape")} for w in want]
    lines = []
    model.summary(print_fn=lines.append)
    total = sum(w["params"] for w in want)
    assert any(f"Total params: {total:,}" in line for line in lines)
