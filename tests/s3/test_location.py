"""CreateBucket LocationConstraint rules (titans3.s3.location)."""

from __future__ import annotations

import pytest

from titans3.core.errors import IllegalLocationConstraintException, InvalidLocationConstraint
from titans3.s3.location import check_location_constraint


@pytest.mark.parametrize(
    ("location", "region"),
    [(None, "us-east-1"), ("", "us-east-1"), ("eu-west-1", "eu-west-1"), ("EU", "eu-west-1"),
     ("titan-lab-1", "titan-lab-1")],
)  # fmt: skip
def test_accepted_constraints(location: str | None, region: str) -> None:
    check_location_constraint(location, region)


@pytest.mark.parametrize(
    ("location", "region", "message"),
    [
        ("eu-west-1", "us-east-1", "The eu-west-1 location constraint is incompatible"),
        ("EU", "us-east-1", "The EU location constraint is incompatible"),
        ("us-west-2", "eu-central-1", "The us-west-2 location constraint is incompatible"),
        (None, "eu-central-1", "The unspecified location constraint is incompatible"),
    ],
)
def test_other_regions_are_illegal_for_this_endpoint(
    location: str | None, region: str, message: str
) -> None:
    with pytest.raises(IllegalLocationConstraintException) as err:
        check_location_constraint(location, region)
    assert err.value.message.startswith(message)
    assert err.value.status == 400


@pytest.mark.parametrize(
    ("location", "region"),
    [("us-east-1", "us-east-1"), ("us-east-1", "eu-west-1"), ("moon-1", "us-east-1"),
     ("titan-lab-1", "us-east-1")],
)  # fmt: skip
def test_unknown_names_and_explicit_us_east_1_are_invalid(location: str, region: str) -> None:
    with pytest.raises(InvalidLocationConstraint) as err:
        check_location_constraint(location, region)
    assert err.value.message == "The specified location-constraint is not valid"
    assert err.value.extra == {"LocationConstraint": location}
