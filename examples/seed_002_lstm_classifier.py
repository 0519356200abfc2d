"""Article 002 (002_6b02d7031226bac2.txt), section 5.2: Embedding + LSTM + Dense, with evaluate.

Written for TensorFlow/Keras. To run it on lstmkit, change only the import line.
Changes from the article: its placeholders (vocab_size, embedding_dim, lstm_units, output_dim,
epochs, batch_size, x_train, y_train, x_test, y_test) are bound to a synthetic 5-class token
task with one-hot labels. The article's last Dense has no activation while the loss is
categorical_crossentropy (expects probabilities): set SOFTMAX=0 to run it exactly as written.
Real Keras 3.15.1 (TF 2.21 CPU): as written, training collapses (test accuracy 0.172, chance
0.2); with activation='softmax' test accuracy 0.966, loss 0.157.
"""
import os

import numpy as np
import lstmkit as tf  # was: import tensorflow as tf

from data import token_classification

vocab_size, embedding_dim, lstm_units, output_dim = 5000, 64, 64, 5
epochs, batch_size = 10, 32
x_train, ytr = token_classification(2000, 40, vocab_size, output_dim, seed=0)
x_test, yte = token_classification(500, 40, vocab_size, output_dim, seed=1)
y_train = np.eye(output_dim, dtype="float32")[ytr]
y_test = np.eye(output_dim, dtype="float32")[yte]
activation = "softmax" if os.environ.get("SOFTMAX", "1") == "1" else None

# 定义 LSTM 模型
model = tf.keras.Sequential([
    tf.keras.layers.Embedding(input_dim=vocab_size, output_dim=embedding_dim),
    tf.keras.layers.LSTM(units=lstm_units),
    tf.keras.layers.Dense(units=output_dim, activation=activation)
])

# 编译模型
model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])

# 训练模型
model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size)

# 评估模型
loss, accuracy = model.evaluate(x_test, y_test)
print('Loss:', loss)
print('Accuracy:', accuracy)
