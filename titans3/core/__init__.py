"""Core services every layer may import: configuration, typed errors, observability,
crypto, and process-wide tuning (:mod:`titans3.core.alloc`).  Nothing here imports
from a higher layer."""
