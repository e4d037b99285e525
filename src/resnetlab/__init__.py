"""resnetlab: residual networks for image classification.

    import resnetlab
    model = resnetlab.create_model("resnet50", num_classes=10)
    model = resnetlab.create_model("resnet50", weights="IMAGENET1K_V2")   # resnetlab.list_weights("resnet50")
    clf = resnetlab.Classifier("resnet20", num_classes=10, input_shape=(32, 32, 3))
    result = resnetlab.train(model="resnet20", data="digits", epochs=30)
"""

__version__ = "0.1.0"

from . import (  # noqa: E402,F401,I001  (resnetlab.callbacks and .optimizers, as keras.*)
    callbacks,
    models,  # noqa: E402,F401  (registers every architecture)
    optimizers,
)
from .analysis.evaluation import EvalResult, evaluate_model  # noqa: E402
from .analysis.explain import grad_cam  # noqa: E402
from .analysis.report import EvaluationReport, evaluate  # noqa: E402
from .checkpoint import load_model, read_info, save_model  # noqa: E402
from .config import Config, load_config  # noqa: E402
from .data import load_dataset  # noqa: E402
from .deploy.predict import Predictor  # noqa: E402
from .errors import ConfigError, DataError, ModelFileError, UserError  # noqa: E402
from .info import ModelInfo  # noqa: E402
from .keras.classifier import Classifier, load  # noqa: E402
from .registry import create_model, list_models, register_model  # noqa: E402
from .training import History, TrainResult, fit, train  # noqa: E402
from .weights import list_weights, pretrained_model  # noqa: E402

__all__ = [
    "Classifier", "Config", "ConfigError", "DataError", "EvalResult", "EvaluationReport", "History", "ModelFileError",
    "ModelInfo", "Predictor", "TrainResult", "UserError", "__version__", "create_model", "evaluate", "evaluate_model",
    "fit", "grad_cam", "list_models", "list_weights", "load", "load_config", "load_dataset", "load_model",
    "pretrained_model", "read_info", "register_model", "save_model", "train",
]
