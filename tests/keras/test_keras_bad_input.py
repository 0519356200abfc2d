"""Bad input raises a clear error naming what was expected and what came."""

import numpy as np
import pytest

import lstmkit as tf
import lstmkit.keras as keras
from lstmkit.keras import layers


def regressor():
    model = keras.Sequential([layers.LSTM(4, input_shape=(5, 2)), layers.Dense(1)])
    model.compile("adam", "mse")
    return model


def test_y_with_the_wrong_number_of_rows():
    with pytest.raises(ValueError, match="x has 10 rows.*y has 9 rows"):
        regressor().fit(np.zeros((10, 5, 2)), np.zeros((9, 1)), verbose=0)


def test_string_labels_for_mse():
    with pytest.raises(TypeError, match="y must be numeric.*dtype <U"):
        regressor().fit(np.zeros((3, 5, 2)), np.array(["a", "b", "c"]), verbose=0)


def test_embedding_index_out_of_range():
    model = keras.Sequential([layers.Embedding(10, 4), layers.LSTM(3)])
    with pytest.raises(IndexError, match=r"input_dim=10.*\[0, 9\].*got id 12"):
        model.predict(np.array([[1, 2, 12]]), verbose=0)
    with pytest.raises(IndexError, match="got id -1"):
        model.predict(np.array([[1, -1, 3]]), verbose=0)


def test_unknown_loss_optimizer_metric_names():
    model = keras.Sequential([layers.Dense(1, input_shape=(2,))])
    with pytest.raises(ValueError, match="unknown loss 'mean_squared_eror'.*expected one of"):
        model.compile("adam", "mean_squared_eror")
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'.*expected one of"):
        model.compile("adamm", "mse")
    with pytest.raises(ValueError, match="unknown metric 'acuracy'"):
        model.compile("adam", "mse", metrics=["acuracy"])


def test_fit_before_compile():
    model = keras.Sequential([layers.Dense(1, input_shape=(2,))])
    with pytest.raises(RuntimeError, match=r"compile\(\) the model before calling fit\(\)"):
        model.fit(np.zeros((4, 2)), np.zeros((4, 1)))
    with pytest.raises(RuntimeError, match="before calling evaluate"):
        model.evaluate(np.zeros((4, 2)), np.zeros((4, 1)))


def test_wrong_input_shape_and_target_shape():
    model = regressor()
    with pytest.raises(ValueError, match=r"expects input of shape \(None, 5, 2\), got \(3, 5, 3\)"):
        model.predict(np.zeros((3, 5, 3)), verbose=0)
    with pytest.raises(ValueError, match=r"y_true has shape \(3, 2\).*\(3, 1\)"):
        model.fit(np.zeros((3, 5, 2)), np.zeros((3, 2)), verbose=0)


def test_categorical_loss_given_integer_labels():
    model = keras.Sequential([layers.LSTM(4, input_shape=(5, 2)), layers.Dense(3, activation="softmax")])
    model.compile("adam", "categorical_crossentropy")
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy"):
        model.fit(np.zeros((3, 5, 2)), np.array([0, 1, 2]), verbose=0)


def test_bad_layer_arguments_and_weights():
    with pytest.raises(ValueError, match="units must be a positive integer"):
        layers.LSTM(0)
    with pytest.raises(ValueError, match="unknown activation 'relux'"):
        layers.LSTM(3, activation="relux")
    with pytest.raises(ValueError, match="merge_mode"):
        layers.Bidirectional(layers.LSTM(3), merge_mode="max")
    with pytest.raises(TypeError, match="unexpected keyword arguments"):
        layers.LSTM(3, unitz=4)
    with pytest.raises(NotImplementedError, match="reset_after=False"):
        layers.GRU(3, reset_after=False)
    lstm = layers.LSTM(3)
    lstm(np.zeros((1, 2, 4), "float32"))
    with pytest.raises(ValueError, match=r"weight 1 must have shape \(3, 12\).*got \(12, 3\)"):
        lstm.set_weights([np.zeros((4, 12)), np.zeros((12, 3)), np.zeros(12)])
    with pytest.raises(ValueError, match=r"expects 3 weights"):
        lstm.set_weights([np.zeros((4, 12))])
    with pytest.raises(ValueError, match=r"initial state c must have shape \(1, 3\)"):
        lstm(np.zeros((1, 2, 4), "float32"), initial_state=[np.zeros((1, 3), "float32"), np.zeros((1, 4), "float32")])


def test_tf_namespace_resolves():
    assert tf.keras.layers.LSTM is layers.LSTM
    assert tf.keras.Sequential is keras.Sequential
    assert tf.keras.losses.SparseCategoricalCrossentropy is keras.losses.SparseCategoricalCrossentropy
