"""The Compute API v2.1 (Nova's) under ``/compute``."""
