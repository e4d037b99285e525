"""`resnetlab.optimizers`, as `keras.optimizers`: the Keras facade's optimizers (keras/optimizers.py)."""

from .keras.optimizers import SGD, Adagrad, Adam, AdamW, Nadam, Optimizer, RMSprop

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "Nadam", "Optimizer", "RMSprop"]
