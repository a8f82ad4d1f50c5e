"""Host a plain web app as the function: ``coldbrew lab --wsgi module:app`` / ``--asgi module:app``.

The lab runs this module as the handler (``coldbrew.lab.hosting.handler``) in each environment. At
import - the function's init - it imports the user's app named by ``COLDBREW_LAB_WSGI`` or
``COLDBREW_LAB_ASGI`` and wraps it with the maintained adapter a user would deploy with: apig-wsgi
for WSGI (Flask, Django...), Mangum for ASGI (FastAPI, Starlette...). Both understand every event
version the lab's front doors send (HTTP API 2.0, REST 1.0, function URL, ALB).
"""

from __future__ import annotations

import importlib
import os


def load_app(spec: str):
    """The object ``module:attr`` names (``attr`` defaults to ``app``; dots walk attributes)."""
    module_name, _, attr = spec.partition(":")
    obj = importlib.import_module(module_name)
    for part in (attr or "app").split("."):
        obj = getattr(obj, part)
    return obj


def _build():
    wsgi, asgi = os.environ.get("COLDBREW_LAB_WSGI"), os.environ.get("COLDBREW_LAB_ASGI")
    if wsgi:
        from apig_wsgi import make_lambda_handler

        return make_lambda_handler(load_app(wsgi), binary_support=True)
    if asgi:
        try:
            from mangum import Mangum
        except ImportError as exc:
            raise RuntimeError("--asgi needs the mangum package (pip install mangum)") from exc
        # Mangum's defaults, as a user deploys it (``handler = Mangum(app)``): lifespan "auto" runs the app's
        # startup and shutdown around every invocation, so an app that loads its model in its lifespan handler
        # (FastAPI's documented pattern) has it; "off" would answer every request without it.
        return Mangum(load_app(asgi))
    return None


def _unconfigured(event, context):
    raise RuntimeError("coldbrew.lab.hosting needs COLDBREW_LAB_WSGI or COLDBREW_LAB_ASGI (module:app)")


handler = _build() or _unconfigured
