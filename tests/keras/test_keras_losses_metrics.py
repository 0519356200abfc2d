"""Losses and metrics equal real Keras's values on the same inputs (fixtures/keras_meta.json),
and 'accuracy' resolves per loss / shapes as Keras resolves it."""

import pytest
import torch

from lstmkit.keras import losses, metrics

LOSSES = {
    "mse": lambda: losses.MeanSquaredError(),
    "mae": lambda: losses.get("mae"),
    "bce": lambda: losses.BinaryCrossentropy(),
    "bce_logits": lambda: losses.BinaryCrossentropy(from_logits=True),
    "cce": lambda: losses.get("categorical_crossentropy"),
    "cce_logits": lambda: losses.CategoricalCrossentropy(from_logits=True),
    "cce_raw": lambda: losses.CategoricalCrossentropy(),
    "scce": lambda: losses.get("sparse_categorical_crossentropy"),
    "scce_logits": lambda: losses.SparseCategoricalCrossentropy(from_logits=True),
}


def tensors(arrays, *names):
    return [torch.from_numpy(arrays[f"losses/{n}"]) for n in names]


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_equals_keras(name, keras_arrays, keras_meta):
    spec = keras_meta["losses"][name]
    y_true, y_pred, sw = tensors(keras_arrays, spec["y_true"], spec["y_pred"], "sw")
    loss = LOSSES[name]()
    assert float(loss(y_true, y_pred)) == pytest.approx(spec["value"], rel=1e-5, abs=1e-6)
    assert float(loss(y_true, y_pred, sample_weight=sw)) == pytest.approx(spec["weighted"], rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("name", ["binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
                                  "precision", "recall", "mae"])
def test_metric_equals_keras(name, keras_arrays, keras_meta):
    spec = keras_meta["metrics"][name]
    y_true, y_pred = tensors(keras_arrays, spec["y_true"], spec["y_pred"])
    m = metrics.get(name)
    m.update_state(y_true[:3], y_pred[:3])  # two updates accumulate like one
    m.update_state(y_true[3:], y_pred[3:])
    assert m.result() == pytest.approx(spec["value"], rel=1e-6)
    m.reset_state()
    m.update_state(y_true, y_pred)
    assert m.result() == pytest.approx(spec["value"], rel=1e-6)


def test_accuracy_resolves_like_keras():
    labels = torch.tensor([0, 2, 1])
    probs = torch.eye(3)[[0, 1, 1]]
    assert isinstance(metrics.resolve("accuracy", labels, probs), metrics.SparseCategoricalAccuracy)
    assert isinstance(metrics.resolve("accuracy", labels[:, None], probs), metrics.SparseCategoricalAccuracy)
    assert isinstance(metrics.resolve("accuracy", probs, probs), metrics.CategoricalAccuracy)
    assert isinstance(metrics.resolve("acc", torch.ones(3, 1), torch.rand(3, 1)), metrics.BinaryAccuracy)
    m = metrics.resolve("accuracy", labels, probs)
    m.update_state(labels, probs)
    assert m.result() == pytest.approx(2 / 3)


def test_masked_loss_is_the_mean_over_real_steps():
    y_true = torch.randn(2, 4, 3)
    y_pred = torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    per_step = ((y_pred - y_true) ** 2).mean(-1)
    want = per_step[mask].mean()
    got = losses.MeanSquaredError()(y_true, y_pred, mask=mask)
    assert float(got) == pytest.approx(float(want), rel=1e-6)


def test_loss_errors_name_expected_and_received():
    with pytest.raises(ValueError, match="unknown loss 'msee'"):
        losses.get("msee")
    with pytest.raises(ValueError, match=r"one-hot.*\(4, 3\).*got \(4,\).*sparse_categorical"):
        losses.categorical_crossentropy(torch.tensor([0, 1, 2, 1]), torch.rand(4, 3))
    with pytest.raises(ValueError, match="label 5 is out of range for an output of 3 classes"):
        losses.sparse_categorical_crossentropy(torch.tensor([0, 5]), torch.rand(2, 3))
    with pytest.raises(ValueError, match=r"y_true has shape \(4, 2\).*\(4, 1\)"):
        losses.mean_squared_error(torch.rand(4, 2), torch.rand(4, 1))
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.get("acuracy")
