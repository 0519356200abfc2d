"""Article 003 (003_9ca7aec8b033bc9e.txt): handwritten digits, each image row one time step.

Written for Keras. To run it on lstmkit, change only the imports.
keras.datasets.mnist downloads at run time (no internet here), so scikit-learn's 8x8 digits
stand in, in the same (images, integer labels) layout. The article's code has two bugs, fixed
here and marked FIXED: its reshape to (n, rows, 1) cannot hold the images (the features are
the columns), and y_train.shape[1] on integer labels raises IndexError (labels are one-hot
encoded for categorical_crossentropy). Pixels are 0..16, so /16 instead of /255.
Real Keras 3.15.1 (TF 2.21 CPU), 200 epochs: test accuracy 0.978 ("Accuracy: 97.78%").
"""
import os

import numpy as np
from lstmkit.keras.models import Sequential  # was: from keras.models import Sequential
from lstmkit.keras.layers import LSTM, Dense  # was: from keras.layers import LSTM, Dense

from data import digits_rows

(x_train, y_train), (x_test, y_test) = digits_rows()
epochs = int(os.environ.get("EPOCHS", 200))

x_train = x_train.reshape((x_train.shape[0], x_train.shape[1], x_train.shape[2])).astype('float32') / 16  # FIXED
x_test = x_test.reshape((x_test.shape[0], x_test.shape[1], x_test.shape[2])).astype('float32') / 16  # FIXED
y_train = np.eye(10, dtype='float32')[y_train]  # FIXED: one-hot
y_test = np.eye(10, dtype='float32')[y_test]

model = Sequential()
model.add(LSTM(50, input_shape=(x_train.shape[1], x_train.shape[2])))  # FIXED: (rows, columns)
model.add(Dense(y_train.shape[1], activation='softmax'))
model.compile(loss='categorical_crossentropy', optimizer='adam', metrics=['accuracy'])

model.fit(x_train, y_train, epochs=epochs, batch_size=32, validation_data=(x_test, y_test))
_, accuracy = model.evaluate(x_test, y_test)
print('Accuracy: %.2f%%' % (accuracy * 100))
