"""Layer details: regularizers, trainable, dropout modes, backward_layer, Keras initialisation."""

import numpy as np
import pytest
import torch

import lstmkit.keras as keras
from lstmkit.keras import layers, regularizers


def test_regularizers_add_keras_penalties_to_the_loss():
    model = keras.Sequential([layers.LSTM(3, input_shape=(4, 2), kernel_regularizer=regularizers.L2(0.1),
                                          recurrent_regularizer="l1"),
                              layers.Dense(1, kernel_regularizer=regularizers.L1L2(l1=0.01, l2=0.02))])
    model.compile(keras.optimizers.SGD(0.0), "mse")
    x, y = np.random.rand(8, 4, 2).astype("float32"), np.random.rand(8, 1).astype("float32")
    kernel, recurrent, _, dense, _ = model.get_weights()
    penalty = 0.1 * (kernel ** 2).sum() + 0.01 * np.abs(recurrent).sum() + 0.01 * np.abs(dense).sum() \
        + 0.02 * (dense ** 2).sum()
    mse = float(((model.predict(x, verbose=0) - y) ** 2).mean())
    h = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert h.history["loss"][0] == pytest.approx(mse + penalty, rel=1e-5)


def test_trainable_false_freezes_a_layer():
    emb = layers.Embedding(10, 3)
    model = keras.Sequential([emb, layers.LSTM(2), layers.Dense(1)])
    emb.trainable = False
    model.compile("adam", "mse")
    x, y = np.random.randint(0, 10, (16, 5)), np.random.rand(16, 1).astype("float32")
    model.predict(x, verbose=0)
    before = emb.get_weights()[0]
    model.fit(x, y, epochs=2, verbose=0)
    np.testing.assert_array_equal(emb.get_weights()[0], before)
    lines = []
    model.summary(print_fn=lines.append)
    assert any("Non-trainable params: 30" in line for line in lines)


def test_dropout_only_in_training():
    layer = layers.Dropout(0.5)
    x = torch.ones(1000)
    assert torch.equal(layer(x), x)
    y = layer(x, training=True)
    assert 0.35 < float((y == 0).float().mean()) < 0.65 and set(y.unique().tolist()) <= {0.0, 2.0}


def test_bidirectional_with_a_different_backward_layer():
    fwd = layers.LSTM(3, return_sequences=True)
    bwd = layers.GRU(3, return_sequences=True, go_backwards=True)
    bi = layers.Bidirectional(fwd, backward_layer=bwd, merge_mode="concat")
    x = torch.randn(2, 5, 4)
    y = bi(x)
    assert y.shape == (2, 5, 6)
    # the backward half is the GRU run on the reversed sequence, flipped back into input order
    torch.testing.assert_close(y[..., 3:], bi.backward_layer(x).flip(1))
    with pytest.raises(ValueError, match="go_backwards"):
        layers.Bidirectional(layers.LSTM(3), backward_layer=layers.LSTM(3))


def test_keras_initialisation():
    layer = layers.LSTM(8)
    layer(torch.zeros(1, 2, 5))
    kernel, recurrent, bias = layer.get_weights()
    limit = np.sqrt(6 / (5 + 32))
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.8 * limit  # glorot_uniform
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(8), atol=1e-5)  # orthogonal rows
    np.testing.assert_array_equal(bias, np.r_[np.zeros(8), np.ones(8), np.zeros(16)])  # unit_forget_bias
    emb = layers.Embedding(1000, 4)
    emb(torch.zeros(1, 1, dtype=torch.long))
    w = emb.get_weights()[0]
    assert np.abs(w).max() <= 0.05 and w.std() > 0.02


def test_layer_configs_round_trip():
    for layer in (layers.LSTM(4, activation="relu", cell="peephole", return_sequences=True, dropout=0.1),
                  layers.GRU(3, go_backwards=True), layers.Dense(2, activation="softmax"),
                  layers.Bidirectional(layers.LSTM(2), merge_mode="ave"), layers.Embedding(9, 2, mask_zero=True)):
        config = layer.get_config()
        clone = type(layer).from_config(config)
        again = clone.get_config()
        for key in ("name",):
            config.pop(key), again.pop(key)
        if "layer" in config:
            for c in (config, again):
                for k in ("layer", "backward_layer"):
                    c[k]["config"].pop("name")
        assert again == config
