"""A small convolutional network for Fashion-MNIST: the example of tuning a model of your own.

`build_cnn` is an ordinary Keras factory, nothing of the harness in it: it takes its
hyperparameters as keyword arguments, and ``input_shape``, ``n_outputs`` and ``seed``, which the
harness passes because the signature names them, and returns a compiled model. The study file
beside it, ``studies/fashion_cnn.toml``, names it (``model = "studies/fashion_cnn.py:build_cnn"``)
and its search space of six hyperparameters:

    tuning run --config studies/fashion_cnn.toml --backend optuna
    tuning benchmark --config studies/fashion_cnn.toml --out results/fashion_cnn
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

OPTIMIZERS = {
    "adam": lambda rate: keras.optimizers.Adam(learning_rate=rate),
    "sgd": lambda rate: keras.optimizers.SGD(learning_rate=rate, momentum=0.9, nesterov=True),
    "rmsprop": lambda rate: keras.optimizers.RMSprop(learning_rate=rate),
}


def build_cnn(
    filters: int = 16,
    kernel_size: int = 3,
    dropout: float = 0.25,
    dense_units: int = 64,
    learning_rate: float = 1e-3,
    optimizer: str = "adam",
    *,
    input_shape: Sequence[int] = (28, 28),
    n_outputs: int = 10,
    seed: int | None = None,
) -> keras.Model:
    """Two convolution blocks (``filters`` then twice as many, ``kernel_size`` square, ReLU, 2x2
    max pooling), dropout, one dense layer of ``dense_units``, softmax over ``n_outputs``;
    compiled with ``optimizer`` ("adam", "sgd" with Nesterov momentum 0.9, "rmsprop") at
    ``learning_rate``, sparse categorical cross-entropy and accuracy."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
    filters, kernel_size, dense_units = int(filters), int(kernel_size), int(dense_units)
    init = keras.initializers.HeNormal(seed=seed)
    inputs = keras.Input(shape=tuple(input_shape))
    x = keras.layers.Reshape((*input_shape, 1))(inputs) if len(input_shape) == 2 else inputs
    for width in (filters, 2 * filters):
        x = keras.layers.Conv2D(
            width, kernel_size, padding="same", activation="relu", kernel_initializer=init
        )(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(float(dropout), seed=seed)(x)
    x = keras.layers.Dense(dense_units, activation="relu", kernel_initializer=init)(x)
    outputs = keras.layers.Dense(
        n_outputs, activation="softmax", kernel_initializer=keras.initializers.GlorotUniform(seed)
    )(x)
    model = keras.Model(inputs, outputs, name="fashion_cnn")
    model.compile(
        optimizer=OPTIMIZERS[optimizer](float(learning_rate)),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
