"""The functional API (several inputs and outputs, shared layers, seq2seq with initial_state and
return_state) and masks flowing from Embedding / Masking into the recurrent layers."""

import numpy as np
import pytest
import torch

import lstmkit.keras as keras
from lstmkit.keras import layers


def test_padded_sequences_give_the_unpadded_result():
    """Oracle: each sequence run alone, without padding, through the same layers."""
    emb = layers.Embedding(30, 5, mask_zero=True)
    rnn = layers.Bidirectional(layers.LSTM(4, return_sequences=True))
    head = layers.GRU(3)
    ids = np.array([[3, 7, 9, 2, 0, 0], [5, 1, 0, 0, 0, 0], [4, 4, 8, 8, 6, 1]])
    batch = head(rnn(emb(ids))).detach().numpy()
    for k, row in enumerate(ids):
        alone = row[row != 0][None]
        np.testing.assert_allclose(batch[k], head(rnn(emb(alone))).detach().numpy()[0], atol=1e-6)


def test_pre_padding_and_masking_layer():
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    x[0, :2] = 0.0  # pre-padded
    model = keras.Sequential([keras.Input((None, 3)), layers.Masking(0.0), layers.LSTM(4)])
    got = model.predict(x, verbose=0)
    alone = model.predict(x[:1, 2:], verbose=0)
    np.testing.assert_allclose(got[0], alone[0], atol=1e-6)


def test_masked_steps_do_not_count_in_the_loss():
    ids = np.array([[1, 2, 3, 0], [4, 5, 0, 0]])
    y = np.random.default_rng(0).normal(size=(2, 4, 1)).astype("float32")
    model = keras.Sequential([layers.Embedding(6, 3, mask_zero=True), layers.LSTM(2, return_sequences=True),
                              layers.TimeDistributed(layers.Dense(1))])
    model.compile("sgd", "mse")
    pred = model.predict(ids, verbose=0)
    mask = ids != 0
    want = float(((pred - y)[..., 0][mask] ** 2).mean())
    assert model.evaluate(ids, y, verbose=0) == pytest.approx(want, rel=1e-5)
    y2 = y.copy()
    y2[~mask] = 1e6  # targets under the mask are ignored
    assert model.evaluate(ids, y2, verbose=0) == pytest.approx(want, rel=1e-5)


def test_multi_input_multi_output_model():
    a = keras.Input((None, 3), name="a")
    b = keras.Input((4,), name="b")
    h = layers.LSTM(5)(a)
    merged = layers.Concatenate()([h, b])
    out1 = layers.Dense(1, name="reg")(merged)
    out2 = layers.Dense(3, activation="softmax", name="cls")(merged)
    model = keras.Model(inputs=[a, b], outputs=[out1, out2])
    rng = np.random.default_rng(0)
    xa, xb = rng.normal(size=(64, 7, 3)).astype("float32"), rng.normal(size=(64, 4)).astype("float32")
    y1, y2 = xb[:, :1] * 2, rng.integers(0, 3, 64)
    model.compile("adam", loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"},
                  metrics={"cls": ["accuracy"]}, loss_weights=[1.0, 0.5])
    h = model.fit([xa, xb], [y1, y2], epochs=3, verbose=0)
    assert {"loss", "reg_loss", "cls_loss", "cls_accuracy"} <= set(h.history)
    logs = model.evaluate({"a": xa, "b": xb}, {"reg": y1, "cls": y2}, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(logs["reg_loss"] + 0.5 * logs["cls_loss"], rel=1e-5)
    p1, p2 = model.predict([xa, xb], verbose=0)
    assert p1.shape == (64, 1) and p2.shape == (64, 3)


def test_seq2seq_training_and_inference_models_share_weights():
    """The classic Keras encoder-decoder: train on teacher forcing, then decode step by step with
    separate encoder / decoder models built from the same layers."""
    tokens, latent = 6, 16
    enc_in = keras.Input((None, tokens))
    _, state_h, state_c = layers.LSTM(latent, return_state=True)(enc_in)
    dec_in = keras.Input((None, tokens))
    dec_lstm = layers.LSTM(latent, return_sequences=True, return_state=True)
    dec_seq, _, _ = dec_lstm(dec_in, initial_state=[state_h, state_c])
    dec_dense = layers.Dense(tokens, activation="softmax")
    model = keras.Model([enc_in, dec_in], dec_dense(dec_seq))
    # task: copy the input sequence (chance accuracy 1/5)
    rng = np.random.default_rng(0)
    seq = rng.integers(1, tokens, size=(256, 4))
    onehot = np.eye(tokens, dtype="float32")
    target = seq
    dec_input = np.concatenate([np.zeros((256, 1), int), target[:, :-1]], axis=1)
    model.compile(keras.optimizers.Adam(0.02), "categorical_crossentropy", metrics=["accuracy"])
    h = model.fit([onehot[seq], onehot[dec_input]], onehot[target], epochs=12, batch_size=32, verbose=0)
    assert h.history["loss"][-1] < 0.5 * h.history["loss"][0]
    assert h.history["accuracy"][-1] > 0.5

    encoder = keras.Model(enc_in, [state_h, state_c])
    s_h, s_c = keras.Input((latent,)), keras.Input((latent,))
    out, h2, c2 = dec_lstm(dec_in, initial_state=[s_h, s_c])
    decoder = keras.Model([dec_in, s_h, s_c], [dec_dense(out), h2, c2])
    # step-by-step decoding with teacher forcing equals the training model's output
    states = encoder.predict(onehot[seq[:8]], verbose=0)
    steps = []
    for t in range(4):
        probs, sh, sc = decoder.predict([onehot[dec_input[:8, t:t + 1]]] + list(states), verbose=0)
        states = [sh, sc]
        steps.append(probs[:, 0])
    np.testing.assert_allclose(np.stack(steps, 1), model.predict([onehot[seq[:8]], onehot[dec_input[:8]]],
                                                                   verbose=0), atol=1e-5)


def test_graph_errors_are_clear():
    a = keras.Input((3,))
    b = keras.Input((3,))
    y = layers.Dense(1)(b)
    with pytest.raises(ValueError, match="graph disconnected"):
        keras.Model(a, y)
    with pytest.raises(ValueError, match="has 2 inputs"):
        keras.Model([a, b], layers.Dense(1)(layers.Concatenate()([a, b]))).predict(np.ones((2, 3)), verbose=0)


def test_lstm_gradients_match_torch_lstm():
    """The Keras layer's gradients equal torch.nn.LSTM's with the same weights (independent oracle)."""
    layer = layers.LSTM(5, return_sequences=True)
    x = torch.randn(3, 6, 4, requires_grad=True)
    layer(x)
    ref = torch.nn.LSTM(4, 5, batch_first=True)
    kernel, recurrent, bias = layer.get_weights()
    with torch.no_grad():
        ref.weight_ih_l0.copy_(torch.from_numpy(kernel.T))
        ref.weight_hh_l0.copy_(torch.from_numpy(recurrent.T))
        ref.bias_ih_l0.copy_(torch.from_numpy(bias))
        ref.bias_hh_l0.zero_()
    layer.train(True)
    y = layer(x)
    w = torch.randn_like(y)
    (y * w).sum().backward()
    gx = x.grad.clone()
    x.grad = None
    y_ref, _ = ref(x)
    (y_ref * w).sum().backward()
    torch.testing.assert_close(y, y_ref, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(gx, x.grad, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(layer.rnn.weight_hh_l0.grad, ref.weight_hh_l0.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(layer.bias.grad, ref.bias_ih_l0.grad, atol=1e-5, rtol=1e-5)


def test_cell_variants_and_dropouts_train():
    x = np.random.default_rng(0).normal(size=(64, 5, 3)).astype("float32")
    y = x[:, :, :1].sum(1)
    for cell in ("peephole", "cifg", "layernorm"):
        model = keras.Sequential([layers.LSTM(6, cell=cell, dropout=0.1, recurrent_dropout=0.1, input_shape=(5, 3)),
                                  layers.Dense(1)])
        model.compile(keras.optimizers.Adam(0.02), "mse")
        h = model.fit(x, y, epochs=8, verbose=0)
        assert h.history["loss"][-1] < h.history["loss"][0], cell
        np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))  # no dropout


def test_fully_masked_sequence_keeps_the_initial_state():
    """A row that is all padding (length 0) runs no step: its output and state stay h0 (as Keras)."""
    layer = layers.LSTM(3, return_sequences=True, return_state=True)
    x = torch.randn(2, 4, 2)
    mask = torch.tensor([[True, True, False, False], [False, False, False, False]])
    h0, c0 = torch.randn(2, 3), torch.randn(2, 3)
    seq, h, c = layer(x, mask=mask, initial_state=[h0, c0])
    torch.testing.assert_close(h[1], h0[1])
    torch.testing.assert_close(c[1], c0[1])
    torch.testing.assert_close(seq[1], h0[1].expand(4, 3))
    seq.sum().backward()  # the hand-written backward accepts a zero length too
