"""Deployment: turn a model into an AWS Lambda build context — Dockerfiles or zip, SAM template, deploy README.

May import: errors, format and convert (to read what it packages). Nothing on the serving path imports it.
"""
