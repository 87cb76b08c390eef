"""The change lock's rules (titans3/cluster/changelock.py): one builder per base version."""

from __future__ import annotations

import pytest

from titans3.cluster.changelock import ChangeLock, majority


def test_majority_is_strict():
    assert [majority(n) for n in (1, 2, 3, 4, 5, 6, 7)] == [1, 2, 2, 3, 3, 4, 4]


def test_a_lease_is_granted_only_on_the_granters_own_version():
    lock = ChangeLock(ttl=30)
    behind = lock.grant("a", base=3, version=4, now=0)
    assert not behind.granted and behind.version == 4 and "behind" in behind.reason
    ahead = lock.grant("a", base=5, version=4, now=0)
    assert not ahead.granted and "ahead" in ahead.reason
    assert lock.grant("a", base=4, version=4, now=0).granted


def test_a_second_holder_is_refused_until_the_lease_expires_or_is_released():
    lock = ChangeLock(ttl=30)
    assert lock.grant("a", 4, 4, now=0).granted
    refused = lock.grant("b", 4, 4, now=10)
    assert not refused.granted and refused.holder == "a"
    assert lock.grant("a", 4, 4, now=11).granted  # the holder may ask again
    assert lock.grant("b", 4, 4, now=45).granted  # a's lease (renewed at 11) ran out at 41
    lock.release("a", 4)  # not a's any more: nothing happens
    assert not lock.grant("a", 4, 4, now=46).granted
    lock.release("b", 4)
    assert lock.grant("a", 4, 4, now=46).granted


def test_two_majorities_cannot_both_be_granted():
    """Five hosts, two builders asking in opposite orders: at most one gets three."""
    hosts = [ChangeLock() for _ in range(5)]
    got = {"a": 0, "b": 0}
    for i, order in enumerate([("a", "b"), ("b", "a"), ("a", "b"), ("b", "a"), ("a", "b")]):
        for who in order:
            got[who] += hosts[i].grant(who, 7, 7, now=0).granted
    assert sum(got.values()) == 5 and min(got.values()) < majority(5) <= max(got.values())


def test_a_document_from_another_than_the_lease_holder_is_not_admitted():
    lock = ChangeLock(ttl=30)
    assert lock.admits("anyone", 4, now=0)  # no lease: a pushed document is taken
    lock.grant("a", 4, 4, now=0)
    assert lock.admits("a", 4, now=1)
    assert not lock.admits("b", 4, now=1)
    assert lock.admits("b", 5, now=1)  # another base: not what the lease covers
    assert lock.admits("b", 4, now=31)  # expired


def test_ttl_must_be_positive():
    with pytest.raises(ValueError):
        ChangeLock(ttl=0)
