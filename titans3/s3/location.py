"""CreateBucket's LocationConstraint, judged the way a regional S3 endpoint does.

Theory of operation
-------------------
A TitanS3 cluster is one region (``--region``, default ``us-east-1``), so it
behaves like AWS's *regional* endpoint for that region, not like the legacy
global endpoint that creates buckets anywhere:

* a constraint that is not a region name at all -> ``InvalidLocationConstraint``
  ("The specified location-constraint is not valid");
* ``us-east-1`` named explicitly -> ``InvalidLocationConstraint`` too: AWS
  never accepts it (us-east-1 is expressed by *omitting* the constraint);
* a real region other than ours (``EU`` is the legacy name of eu-west-1) ->
  ``IllegalLocationConstraintException`` ("The <x> location constraint is
  incompatible for the region specific endpoint this request was sent to.");
* no constraint while our region is not us-east-1 -> the same exception with
  "unspecified": AWS creates such a bucket in us-east-1, which this endpoint
  cannot.

"A region name" is one of AWS's (the list below, which also covers GovCloud,
China, and the legacy ``EU``) or the configured region, so a private region
name such as ``titan-lab-1`` works when the cluster is configured with it.
"""

from __future__ import annotations

from titans3.core.errors import IllegalLocationConstraintException, InvalidLocationConstraint

AWS_REGIONS = frozenset(
    {
        "af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2",
        "ap-northeast-3", "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2",
        "ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "ap-southeast-6", "ap-southeast-7",
        "ca-central-1", "ca-west-1", "cn-north-1", "cn-northwest-1", "eu-central-1",
        "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-2",
        "eu-west-3", "il-central-1", "me-central-1", "me-south-1", "mx-central-1", "sa-east-1",
        "us-east-1", "us-east-2", "us-gov-east-1", "us-gov-west-1", "us-west-1", "us-west-2",
        "EU",
    }
)  # fmt: skip
DEFAULT_REGION = "us-east-1"


def check_location_constraint(location: str | None, region: str) -> None:
    """Accept ``location`` (None or "" = not given) on an endpoint for ``region`` or raise."""
    if not location:
        if region != DEFAULT_REGION:
            raise IllegalLocationConstraintException(
                "The unspecified location constraint is incompatible for the region specific "
                "endpoint this request was sent to."
            )
        return
    if (location not in AWS_REGIONS and location != region) or location == DEFAULT_REGION:
        raise InvalidLocationConstraint(LocationConstraint=location)
    effective = "eu-west-1" if location == "EU" else location
    if effective != region:
        raise IllegalLocationConstraintException(
            f"The {location} location constraint is incompatible for the region specific "
            "endpoint this request was sent to.",
            LocationConstraint=location,
        )
