"""Deployment: turn a model into an AWS Lambda build context — Dockerfiles or zip, SAM template, deploy README.

The zip is built here (``zipbuild.py``, the kernel cross-built by ``crossbuild.py``) and smoke-tested from a clean
directory (``smoke.py``; ``lambda_invoke.py`` is its standard-library-only runner for emulated architectures).

May import: the base modules, errors, format and convert (to read what it packages), sources (the S3 URI parser),
runtimes' constants (the handler's warm-up limits, for the README), engine and app's contract (the model's own
answers the smoke test compares with) and the lab (which hosts the zip's handler in the smoke test). Templates live in ``templates/*.j2``
(package data, rendered by ``render.py``); ``warmer.py`` is the scheduled warmer Lambda's code, standard library
and boto3 only. Nothing on the serving path imports it.
"""
