"""save / load_model: one safetensors file (JSON config + weights), identical predictions after a
reload, clear errors for damaged files, atomic writes."""

import json
import struct

import numpy as np
import pytest

import lstmkit.keras as keras
from lstmkit.keras import layers

pytest.importorskip("safetensors")


def text_model():
    model = keras.Sequential([
        layers.Embedding(40, 6, mask_zero=True),
        layers.Bidirectional(layers.LSTM(5, return_sequences=True), merge_mode="sum"),
        layers.GRU(4, go_backwards=True),
        layers.Dropout(0.2),
        layers.Dense(3, activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(learning_rate=0.005, clipnorm=1.0), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def data():
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 40, size=(32, 7))
    ids[::3, 5:] = 0
    return ids, rng.integers(0, 3, 32)


def test_saved_model_reloads_and_predicts_identically(tmp_path):
    ids, y = data()
    model = text_model()
    model.fit(ids, y, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]  # no temporary file left behind
    raw = path.read_bytes()
    assert b"pickle" not in raw and raw[:2] != b"PK"
    n = struct.unpack("<Q", raw[:8])[0]
    config = json.loads(json.loads(raw[8:8 + n])["__metadata__"]["model_config"])  # plain JSON config
    assert config["class_name"] == "Sequential" and config["config"]["layers"][2]["config"]["go_backwards"]
    loaded = keras.load_model(path)
    np.testing.assert_array_equal(loaded.predict(ids, verbose=0), model.predict(ids, verbose=0))
    assert loaded.optimizer.get_config()["clipnorm"] == 1.0 and loaded.optimizer.learning_rate == 0.005
    assert loaded.evaluate(ids, y, verbose=0) == pytest.approx(model.evaluate(ids, y, verbose=0))
    loaded.fit(ids, y, epochs=1, verbose=0)  # compiled as it was


def test_functional_model_round_trip(tmp_path):
    enc_in = keras.Input((None, 3))
    _, h, c = layers.LSTM(4, return_state=True)(enc_in)
    dec_in = keras.Input((None, 2), name="decoder_in")
    seq = layers.LSTM(4, return_sequences=True)(dec_in, initial_state=[h, c])
    out = layers.TimeDistributed(layers.Dense(2))(seq)
    model = keras.Model([enc_in, dec_in], [out, h])
    x = [np.random.rand(5, 6, 3).astype("float32"), np.random.rand(5, 4, 2).astype("float32")]
    model.save(tmp_path / "f.keras")
    loaded = keras.models.load_model(tmp_path / "f.keras")
    for a, b in zip(loaded.predict(x, verbose=0), model.predict(x, verbose=0)):
        np.testing.assert_array_equal(a, b)


def test_weights_only_round_trip(tmp_path):
    ids, _ = data()
    model, other = text_model(), text_model()
    model.predict(ids, verbose=0)
    other.predict(ids, verbose=0)
    model.save_weights(tmp_path / "w.safetensors")
    other.load_weights(tmp_path / "w.safetensors")
    np.testing.assert_array_equal(other.predict(ids, verbose=0), model.predict(ids, verbose=0))


def test_damaged_files_raise_clear_errors(tmp_path):
    ids, _ = data()
    model = text_model()
    model.predict(ids, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    raw = path.read_bytes()
    (tmp_path / "cut.keras").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        keras.load_model(tmp_path / "cut.keras")
    flipped = bytearray(raw)
    flipped[-10] ^= 0xFF  # one byte of the weights
    (tmp_path / "flip.keras").write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="corrupted"):
        keras.load_model(tmp_path / "flip.keras")
    (tmp_path / "zip.keras").write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(ValueError, match="zip archive"):
        keras.load_model(tmp_path / "zip.keras")
    with pytest.raises(FileNotFoundError):
        keras.load_model(tmp_path / "missing.keras")
    other = keras.Sequential([layers.Dense(2, input_shape=(3,))])
    with pytest.raises(ValueError, match="does not fit this model"):
        other.load_weights(path)


def test_failed_save_leaves_the_old_file(tmp_path, monkeypatch):
    ids, _ = data()
    model = text_model()
    model.predict(ids, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    before = path.read_bytes()
    import lstmkit.keras.saving as saving

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(saving.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]


def test_unbuilt_model_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match="not built"):
        keras.Sequential([layers.Dense(1)]).save(tmp_path / "x.keras")
