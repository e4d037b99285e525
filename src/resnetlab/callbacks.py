"""`resnetlab.callbacks`, as `keras.callbacks`: the public name of the Keras facade's callbacks (keras/callbacks.py)."""

from .keras.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
)

__all__ = ["CSVLogger", "Callback", "EarlyStopping", "LambdaCallback", "LearningRateScheduler", "ModelCheckpoint",
           "ReduceLROnPlateau"]
