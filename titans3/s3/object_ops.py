"""The handler table of the object-level operations beyond GET/PUT/DELETE:
versioning, copy, batch delete, object tagging, upload listing and
GetObjectAttributes (one import
for ``titans3.s3.app``)."""

from __future__ import annotations

from titans3.s3 import (
    handlers_attributes,
    handlers_copy,
    handlers_delete,
    handlers_tagging,
    handlers_uploads,
    handlers_versions,
)
from titans3.s3.context import Handler

HANDLERS: dict[str, Handler] = {
    **handlers_versions.HANDLERS,
    **handlers_copy.HANDLERS,
    **handlers_delete.HANDLERS,
    **handlers_tagging.HANDLERS,
    **handlers_uploads.HANDLERS,
    **handlers_attributes.HANDLERS,
}
