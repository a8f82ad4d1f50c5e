"""How the app runs: local server, AWS Lambda handler, and the lab."""
