"""How the app runs: `local.py` (gunicorn for `coldbrew serve`) and `aws_lambda.py` (the Lambda handler).

May import: errors, format, engine, sources, app. Never the lab, the experiment or deployment.
"""
