"""The object layer: S3 semantics over erasure-coded fragments on drives.

Fronts (S3, FUSE, NBD, admin, web, CLI) use only the names re-exported here
from :mod:`titans3.objects.api` -- the operations (:class:`ObjectAPI`) and the
records they exchange.  Everything else in the package is the implementation
(``docs/architecture.md`` maps it); the daemon and the cluster layer build it.
"""

from titans3.objects.api import *  # noqa: F403 -- the public surface, listed in api.__all__
from titans3.objects.api import __all__  # noqa: F401
