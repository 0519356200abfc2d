"""Article 004 (004_0cbc613837a87de6.txt), section 5: the minimal LSTM layer, unchanged.

Written for Keras. To run it on lstmkit, change only the imports.
reference_004.npz holds weights (Keras layout: kernel [10, 200], recurrent_kernel [50, 200],
bias [200], gate order i, f, c, o), an input x of shape (4, 5, 10) and the output y (4, 50)
that real Keras 3.15.1 computed for them: set the weights, predict x, and compare with y.
"""
import numpy as np
from lstmkit.keras.models import Sequential  # was: from keras.models import Sequential
from lstmkit.keras.layers import LSTM  # was: from keras.layers import LSTM

# 创建一个序列模型
model = Sequential()

# 添加一个LSTM层，输入的维度为10
model.add(LSTM(50, input_shape=(5, 10)))

# 编译模型
model.compile(loss='mean_squared_error', optimizer='adam')

ref = np.load(__file__.replace("seed_004_minimal.py", "reference_004.npz"))
model.layers[0].set_weights([ref["kernel"], ref["recurrent_kernel"], ref["bias"]])
y = model.predict(ref["x"])
err = float(np.abs(y - ref["y"]).max())
print(f"output shape {y.shape}, max abs difference from Keras {err:.2e}")
assert y.shape == (4, 50) and err < 1e-5
