"""Article 001 (001_59c395befd96a54d.txt), section 4: LSTM(50, activation='relu') regressor.

Written for Keras. To run it on lstmkit, change only the imports.
Changes from the article: X_train/y_train bound to a synthetic regression task
(data.regression_series) and a held-out evaluate() added.
Real Keras 3.15.1 (TF 2.21 CPU): test MSE 0.827 (predicting the mean gives 1.483).
"""
from lstmkit.keras.models import Sequential  # was: from keras.models import Sequential
from lstmkit.keras.layers import LSTM, Dense  # was: from keras.layers import LSTM, Dense

from data import regression_series

# 设置模型参数
batch_size = 64
timesteps = 100
features = 10
epochs = 100

X_train, y_train = regression_series(1024, timesteps, features, seed=0)
X_test, y_test = regression_series(256, timesteps, features, seed=1)

# 创建模型
model = Sequential()
model.add(LSTM(50, activation='relu', input_shape=(timesteps, features)))
model.add(Dense(1))

# 编译模型
model.compile(optimizer='adam', loss='mse')

# 训练模型
model.fit(X_train, y_train, epochs=epochs, batch_size=batch_size)

mse = model.evaluate(X_test, y_test)
print(f"test mse {mse:.4f} (predicting the mean: {float(((y_test - y_test.mean()) ** 2).mean()):.4f})")
