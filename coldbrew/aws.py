"""The AWS Lambda entry point: set the function's handler to ``coldbrew.aws.handler``.

Importing this module is Lambda's init phase: it loads the model named by ``MODEL_SOURCE``/``MODEL_URI``
and logs the start-up JSON line. ``coldbrew.aws.app`` is the same environment as a WSGI app (with
``/_warm`` and the ``X-Coldbrew-*`` headers) for WSGI-on-Lambda hosts such as Zappa. See
:mod:`coldbrew.runtimes.aws_lambda` and docs/deploy.md.

The cyclic garbage collector is paused during the init: the imports and the model load allocate objects that all
stay alive, so every collection it would run there is wasted cold-start time (about 1.5 ms of CPU of a ~30 ms
start, bench/results/floor.md); it is switched back on (if it was on) before the first invocation.
"""

import gc

_collecting = gc.isenabled()
gc.disable()
try:
    from coldbrew.runtimes.aws_lambda import init_from_env

    handler = init_from_env()
    app = handler.wsgi
finally:
    if _collecting:
        gc.enable()
