"""Datasets, in-memory image sets, batched augmentation and loaders."""

from .arrays import arrays_to_imageset, images_to_tensor, labels_to_tensor
from .augment import Augment
from .dataset import DatasetSplits, ImageSet
from .loader import BatchLoader, Normalize
from .sources import DATASETS, load_dataset
from .stats import channel_stats

__all__ = ["DATASETS", "Augment", "BatchLoader", "DatasetSplits", "ImageSet", "Normalize", "arrays_to_imageset",
           "channel_stats", "images_to_tensor", "labels_to_tensor", "load_dataset"]
