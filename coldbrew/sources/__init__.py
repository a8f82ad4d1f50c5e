"""Where model bytes come from: a local path (DISK) or `s3://bucket/key` (S3), cached and checked.

Layer 3. May import: the base modules (errors, atomicfile), format and engine; never app, runtimes, the lab or the
tools. Only the standard library is imported here; boto3 is imported when an S3 source is fetched.
"""

from coldbrew.sources.config import ModelConfig, config_from_env, config_from_uri
from coldbrew.sources.fetch import FetchedModel, default_cache_dir, fetch

__all__ = ["ModelConfig", "FetchedModel", "config_from_env", "config_from_uri", "fetch", "default_cache_dir"]
