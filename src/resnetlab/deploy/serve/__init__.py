"""Serve a model file over HTTP: `resnetlab serve MODEL` (needs `pip install 'resnetlab[serve]'`)."""

from .app import ServeConfig, create_app, serve

__all__ = ["ServeConfig", "create_app", "serve"]
