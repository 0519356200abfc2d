"""Article 000 (000_036ee7ab52368c87.txt), section 5: Embedding + two Bidirectional LSTMs.

Written for TensorFlow/Keras. To run it on lstmkit, change only the import line.
Changes from the article: its placeholders train_data/train_labels/test_data are bound to
a synthetic token task (data.token_classification), and evaluate() is added to report a
held-out figure. Model, compile and fit are as the article wrote them.
Real Keras 3.15.1 (TF 2.21 CPU) with this file: test accuracy 0.764, loss 0.932.
"""
import numpy as np
import lstmkit as tf  # was: import tensorflow as tf

from data import token_classification

train_data, train_labels = token_classification(2000, 40, 10000, 10, seed=0)
test_data, test_labels = token_classification(500, 40, 10000, 10, seed=1)

# 定义LSTM模型
model = tf.keras.Sequential([
    tf.keras.layers.Embedding(input_dim=10000, output_dim=64),
    tf.keras.layers.Bidirectional(tf.keras.layers.LSTM(64, return_sequences=True)),
    tf.keras.layers.Bidirectional(tf.keras.layers.LSTM(32)),
    tf.keras.layers.Dense(64, activation='relu'),
    tf.keras.layers.Dense(10)
])

# 编译模型
model.compile(optimizer='adam',
              loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=['accuracy'])

# 训练模型
model.fit(train_data, train_labels, epochs=10)

# 预测
pred = model.predict(test_data)
assert pred.shape == (500, 10)

loss, acc = model.evaluate(test_data, test_labels)
print(f"test loss {loss:.4f} accuracy {acc:.4f}")
