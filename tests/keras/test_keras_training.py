"""compile / fit / evaluate / predict, callbacks and optimizers on small problems."""

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import lstmkit.keras as keras
from lstmkit.keras import callbacks, layers, optimizers


def sum_task(n=256, steps=6, seed=0):
    """y = sum of the first feature over time: learnable by an LSTM in a few epochs."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, steps, 2)).astype("float32")
    return x, x[:, :, :1].sum(1) / math.sqrt(steps)


def small_model(units=8):
    model = keras.Sequential([layers.LSTM(units, input_shape=(6, 2)), layers.Dense(1)])
    model.compile(optimizer=optimizers.Adam(0.02), loss="mse")
    return model


def test_fit_lowers_the_loss_and_returns_history(capsys):
    x, y = sum_task()
    model = small_model()
    base = float(((y - y.mean()) ** 2).mean())
    history = model.fit(x, y, epochs=6, batch_size=32, verbose=0)
    assert capsys.readouterr().out == ""
    loss = history.history["loss"]
    assert len(loss) == 6 and history.epoch == list(range(6))
    assert loss[-1] < 0.5 * loss[0] and loss[-1] < 0.5 * base
    assert model.evaluate(x, y, verbose=0) == pytest.approx(float(((model.predict(x, verbose=0) - y) ** 2).mean()),
                                                            rel=1e-4)


def test_one_line_per_epoch_when_not_a_terminal(capsys):
    x, y = sum_task(64)
    model = small_model()
    model.fit(x, y, epochs=3, verbose=1, validation_split=0.25)
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("Epoch")]
    assert len(lines) == 3
    assert "loss:" in lines[0] and "val_loss:" in lines[0] and "Epoch 3/3" in lines[2]


def test_validation_split_takes_the_last_rows():
    x, y = sum_task(100)
    model = small_model()
    h = model.fit(x, y, epochs=1, validation_split=0.2, verbose=0, shuffle=False)
    want = model.evaluate(x[80:], y[80:], verbose=0)
    assert h.history["val_loss"][0] == pytest.approx(want, rel=1e-5)


def test_torch_tensors_datasets_and_loaders():
    x, y = sum_task(96)
    model = small_model()
    model.fit(torch.from_numpy(x), torch.from_numpy(y), epochs=1, verbose=0)
    ds = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    h1 = model.fit(ds, epochs=2, batch_size=16, verbose=0, validation_data=(x[:10], y[:10]))
    h2 = model.fit(DataLoader(ds, batch_size=48), epochs=1, verbose=0)
    assert set(h1.history) == {"loss", "val_loss"} and len(h2.history["loss"]) == 1
    assert model.evaluate(ds, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-5)


def test_evaluate_returns_loss_and_metrics_like_keras():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5, 3)).astype("float32")
    y = rng.integers(0, 3, 40)
    model = keras.Sequential([layers.GRU(4), layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    loss, acc = model.evaluate(x, y, verbose=0)
    p = model.predict(x, verbose=0)
    assert acc == pytest.approx(float((p.argmax(1) == y).mean()))
    assert loss == pytest.approx(float(-np.log(p[np.arange(40), y]).mean()), rel=1e-5)
    d = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(d) == {"loss", "accuracy"}


def test_sample_and_class_weights_weight_the_loss():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, 3, 2)).astype("float32")
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    model = keras.Sequential([layers.LSTM(3), layers.Dense(2, activation="softmax")])
    model.compile(optimizers.SGD(0.0), "sparse_categorical_crossentropy")  # lr 0: weights stay put
    p = model.predict(x, verbose=0)
    per_sample = -np.log(p[np.arange(8), y])
    h = model.fit(x, y, epochs=1, batch_size=8, class_weight={0: 1.0, 1: 3.0}, verbose=0, shuffle=False)
    assert h.history["loss"][0] == pytest.approx(float((per_sample * np.where(y == 1, 3.0, 1.0)).mean()), rel=1e-5)
    sw = np.linspace(0.5, 2.0, 8).astype("float32")
    h = model.fit(x, y, epochs=1, batch_size=8, sample_weight=sw, verbose=0, shuffle=False)
    assert h.history["loss"][0] == pytest.approx(float((per_sample * sw).mean()), rel=1e-5)


def test_sgd_step_is_torch_sgd_with_keras_defaults():
    model = keras.Sequential([layers.Dense(1, input_shape=(3,), use_bias=False)])
    model.compile(optimizers.SGD(learning_rate=0.1), "mse")
    x = np.ones((4, 3), "float32")
    y = np.zeros((4, 1), "float32")
    w0 = model.get_weights()[0]
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    grad = 2 * (x @ w0 - y).mean() * np.ones_like(w0)  # d/dw mean((x w)^2) with x = 1
    np.testing.assert_allclose(model.get_weights()[0], w0 - 0.1 * grad, rtol=1e-5)


@pytest.mark.parametrize("name,cls", [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam),
                                      ("adamw", torch.optim.AdamW), ("rmsprop", torch.optim.RMSprop),
                                      ("adagrad", torch.optim.Adagrad)])
def test_optimizers_are_torch_optim(name, cls):
    x, y = sum_task(32)
    model = small_model()
    model.compile(name, "mse")
    model.fit(x, y, epochs=1, verbose=0)
    assert isinstance(model.optimizer.torch_optimizer, cls)


def test_schedule_and_clipping():
    sched = optimizers.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    opt = optimizers.SGD(learning_rate=sched, global_clipnorm=1e-3)
    x, y = sum_task(64)
    model = small_model()
    model.compile(opt, "mse")
    before = [w.copy() for w in model.get_weights()]
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)  # 4 steps
    assert opt.iterations == 4
    assert opt.learning_rate == pytest.approx(0.1 * 0.5 ** 2)
    moved = np.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(model.get_weights(), before)))
    assert moved <= sum(0.1 * 0.5 ** (k / 2) for k in range(4)) * 1e-3 * (1 + 1e-4)
    opt = optimizers.Adam(clipvalue=1e-4)
    model.compile(opt, "mse")
    model.fit(x[:16], y[:16] * 1000, epochs=1, batch_size=16, verbose=0)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert max(float(g.abs().max()) for g in grads) <= 1e-4 + 1e-9


def test_callbacks(tmp_path):
    x, y = sum_task(64)
    model = small_model()
    stop = callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=1e9)
    h = model.fit(x, y, epochs=10, verbose=0, callbacks=[stop])
    assert len(h.history["loss"]) == 2  # epoch 2 does not improve by 1e9
    plateau = callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=1e9)
    model.compile(optimizers.Adam(0.01), "mse")
    model.fit(x, y, epochs=3, verbose=0, callbacks=[plateau])
    assert model.optimizer.learning_rate == pytest.approx(0.01 * 0.5 ** 2)
    sched = callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))
    h = model.fit(x, y, epochs=2, verbose=0, callbacks=[sched])
    assert h.history["learning_rate"] == pytest.approx([0.1, 0.05])
    log = tmp_path / "log.csv"
    ckpt = tmp_path / "m-{epoch:02d}.keras"
    model.fit(x, y, epochs=2, verbose=0, validation_split=0.25,
              callbacks=[callbacks.CSVLogger(log), callbacks.ModelCheckpoint(str(ckpt), save_best_only=False)])
    rows = log.read_text().splitlines()
    assert rows[0].split(",") == ["epoch", "loss", "val_loss"] and len(rows) == 3
    assert (tmp_path / "m-01.keras").exists() and (tmp_path / "m-02.keras").exists()
    loaded = keras.load_model(tmp_path / "m-02.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_terminate_on_nan():
    x, y = sum_task(64)
    y[:] = np.nan
    model = small_model()
    h = model.fit(x, y, epochs=5, batch_size=16, verbose=0, callbacks=[callbacks.TerminateOnNaN()])
    assert len(h.history["loss"]) == 1 and math.isnan(h.history["loss"][0])


def test_initial_epoch_and_train_on_batch():
    x, y = sum_task(32)
    model = small_model()
    h = model.fit(x, y, epochs=3, initial_epoch=1, verbose=0)
    assert h.epoch == [1, 2]
    loss = model.train_on_batch(x, y)
    assert isinstance(loss, float)
    assert model.predict_on_batch(x).shape == (32, 1)


def test_stateful_layer_carries_state_until_reset():
    x = np.random.default_rng(0).normal(size=(2, 6, 3)).astype("float32")
    model = keras.Sequential([keras.Input(batch_shape=(2, None, 3)), layers.LSTM(4, stateful=True)])
    whole = model.predict(x, verbose=0)
    model.reset_states()
    model.predict(x[:, :3], verbose=0)
    second = model.predict(x[:, 3:], verbose=0)
    np.testing.assert_allclose(second, whole, atol=1e-6)
    model.reset_states()
    np.testing.assert_allclose(model.predict(x, verbose=0), whole, atol=1e-6)


def test_progress_bar_on_a_terminal(capsys, monkeypatch):
    x, y = sum_task(64)
    model = small_model()
    monkeypatch.setattr("sys.stdout.isatty", lambda: True, raising=False)
    model.fit(x, y, epochs=2, batch_size=16, verbose=1)
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Epoch 1/2" in text and "Epoch 2/2" in text
    assert "4/4" in text and "loss:" in text and "step" in text  # tqdm: steps done, rate/ETA, postfix


def test_same_seed_same_run():
    x, y = sum_task(64)
    runs = []
    for _ in range(2):
        keras.utils.set_random_seed(7)
        model = keras.Sequential([layers.LSTM(6, dropout=0.2, recurrent_dropout=0.2, input_shape=(6, 2)),
                                  layers.Dropout(0.3), layers.Dense(1)])
        model.compile("adam", "mse")
        runs.append(model.fit(x, y, epochs=2, batch_size=16, verbose=0).history["loss"])
    assert runs[0] == runs[1]
