"""Deployment: turn a model into an AWS Lambda build context — Dockerfiles or zip, SAM template, deploy README.

May import: the base modules, errors, format and convert (to read what it packages), sources (the S3 URI parser)
and runtimes' constants (the handler's warm-up limits, for the README). Templates live in ``templates/*.j2``
(package data, rendered by ``render.py``); ``warmer.py`` is the scheduled warmer Lambda's code, standard library
and boto3 only. Nothing on the serving path imports it.
"""
