"""How the app runs: `local.py` (waitress for `coldbrew serve`) and `aws_lambda.py` (the Lambda handler).

Layer 5. May import: the base modules, format, engine, sources, app. Never the lab, the experiment or deployment.
"""
