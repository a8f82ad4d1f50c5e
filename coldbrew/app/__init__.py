"""The HTTP app: WSGI routes, request validation, the OpenAPI document, start-up telemetry.

``create_app(predictor)`` is the WSGI callable any WSGI host (waitress, gunicorn, apig-wsgi, Zappa) can serve;
``coldbrew.app.startup.load_from_env`` loads the model the way every runtime does and times it.

Layer 4. May import: the base modules (errors...), format, engine, sources. Never runtimes, the lab or the tools.
"""

from coldbrew.app.wsgi import create_app

__all__ = ["create_app"]
