"""coldbrew: serve ML models on AWS Lambda with millisecond cold starts, and measure it."""

__version__ = "0.1.0"
