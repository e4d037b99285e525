"""Serve a model file over HTTP: `resnetlab serve MODEL` (needs `pip install 'resnetlab[serve]'`)."""

from .app import create_app, serve
from .settings import ServeConfig

__all__ = ["ServeConfig", "create_app", "serve"]
