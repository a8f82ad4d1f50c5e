"""The AWS Lambda entry point: set the function's handler to ``coldbrew.aws.handler``.

Importing this module is Lambda's init phase: it loads the model named by ``MODEL_SOURCE``/``MODEL_URI``
and logs the start-up JSON line. ``coldbrew.aws.app`` is the same environment as a WSGI app (with
``/_warm`` and the ``X-Coldbrew-*`` headers) for WSGI-on-Lambda hosts such as Zappa. See
:mod:`coldbrew.runtimes.aws_lambda` and docs/deploy.md.
"""

from coldbrew.runtimes.aws_lambda import init_from_env

handler = init_from_env()
app = handler.wsgi
