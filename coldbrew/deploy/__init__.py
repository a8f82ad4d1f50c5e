"""Deployment: turn a model into an AWS Lambda build context — Dockerfiles or zip, SAM template, deploy README.

May import: the base modules, format and convert (to read what it packages), sources (the S3 URI parser). Nothing on the serving path imports it.
"""
