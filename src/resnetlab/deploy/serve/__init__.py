"""Serve a model file over HTTP: `resnetlab serve MODEL` (needs `pip install 'resnetlab[serve]'`).

`ServeConfig` imports without FastAPI, so the CLI can parse and check server settings on a plain install;
`create_app` and `serve` import it when first asked for.
"""

from typing import Any

from .settings import ServeConfig

__all__ = ["ServeConfig", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name in ("create_app", "serve"):
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
