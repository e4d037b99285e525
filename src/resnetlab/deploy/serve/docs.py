"""The API documentation page at /docs, made from the OpenAPI schema and self-contained.

FastAPI's own /docs and /redoc load Swagger UI / ReDoc from a CDN, so they are blank on a machine
without internet access, where a model server often runs. This page needs nothing but itself: every
endpoint with its method, summary, parameters and request body types, and a link to /openapi.json.
"""

from __future__ import annotations

from html import escape
from typing import Any

METHODS = ("get", "post", "put", "patch", "delete")

STYLE = """
  body { font-family: system-ui, sans-serif; max-width: 860px; margin: 2rem auto; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.4rem; margin-bottom: .2rem; }
  .endpoint { border: 1px solid #e2e8f0; border-radius: 8px; padding: .8rem 1rem; margin: 1rem 0; }
  .method { font-weight: 700; font-family: ui-monospace, monospace; padding: .1rem .45rem; border-radius: 4px;
            background: #2b6cb0; color: #fff; margin-right: .5rem; }
  .method.get { background: #2f855a; }
  .path { font-family: ui-monospace, monospace; font-size: 1.05rem; }
  table { border-collapse: collapse; margin-top: .5rem; font-size: .9rem; }
  td, th { text-align: left; padding: .2rem .8rem .2rem 0; vertical-align: top; }
  code { font-family: ui-monospace, monospace; }
  .muted { color: #666; font-size: .9rem; }
"""


def docs_page(spec: dict[str, Any]) -> str:
    """An HTML page listing every operation in the OpenAPI `spec` (no scripts, no external URLs)."""
    info = spec.get("info", {})
    sections = [_operation(path, method, operation)
                for path, item in spec.get("paths", {}).items()
                for method, operation in item.items() if method in METHODS]
    title = escape(f"{info.get('title', 'API')} {info.get('version', '')}".strip())
    return (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{title} API</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title} API</h1>\n"
            f"<p>{escape(info.get('description', ''))}</p>\n"
            f'<p class="muted">The machine-readable schema: <a href="openapi.json">openapi.json</a> (OpenAPI '
            f"{escape(str(spec.get('openapi', '')))}). Every error is JSON <code>{{\"error\": \"...\"}}</code>.</p>\n"
            + "\n".join(sections) + "\n</body>\n</html>\n")


def _operation(path: str, method: str, operation: dict[str, Any]) -> str:
    rows = [f"<tr><td><code>{escape(p.get('name', ''))}</code></td><td>{escape(p.get('in', ''))}</td>"
            f"<td>{escape(_type(p.get('schema', {})))}</td><td>{'required' if p.get('required') else 'optional'}</td>"
            f"<td>{escape(p.get('description', ''))}</td></tr>" for p in operation.get("parameters", [])]
    body = operation.get("requestBody", {}).get("content", {})
    parts = [f'<section class="endpoint" id="{escape(method)}-{escape(path)}">',
             f'<div><span class="method {escape(method)}">{escape(method.upper())}</span>'
             f'<span class="path">{escape(path)}</span></div>',
             f"<p>{escape(operation.get('summary', ''))}</p>"]
    if operation.get("description"):
        parts.append(f'<p class="muted">{escape(operation["description"])}</p>')
    if rows:
        parts.append("<table><tr><th>parameter</th><th>in</th><th>type</th><th></th><th></th></tr>"
                     + "".join(rows) + "</table>")
    if body:
        parts.append("<p>Request body: " + ", ".join(f"<code>{escape(kind)}</code>" for kind in body) + "</p>")
    parts.append("</section>")
    return "\n".join(parts)


def _type(schema: dict[str, Any]) -> str:
    """`integer, 1..1000, default 5`: the parameter's type and limits, from its JSON schema."""
    words = [str(schema.get("type", "any"))]
    if "minimum" in schema or "maximum" in schema:
        words.append(f"{schema.get('minimum', '')}..{schema.get('maximum', '')}")
    if "default" in schema:
        words.append(f"default {schema['default']}")
    return ", ".join(words)
