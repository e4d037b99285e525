"""The Keras-style facade: `Classifier` (compile, fit, evaluate, predict, save) and its callbacks."""

from . import callbacks
from .classifier import Classifier, load

__all__ = ["Classifier", "callbacks", "load"]
