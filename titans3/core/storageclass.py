"""Storage classes mapped to erasure schemes (lifecycle transitions, PUT ``x-amz-storage-class``).

Theory of operation
-------------------
``STANDARD`` is always the bucket's scheme (the cluster default, or the
bucket's own).  Every other class a client may name is unknown until the
operator maps it, in the ``storage_classes`` option::

    storage_classes = "STANDARD_IA=2+2,GLACIER_IR=3+3"

A mapped scheme must fit the placement: the ring gives every key ``n`` drives
(the default scheme's ``k + m``), so a class's ``k + m`` may not exceed it,
and it needs parity (``m >= 1``: a transition never trades durability for
space silently).  Unmapped class names get AWS's ``InvalidStorageClass``.
Pure: parsed once at start-up, checked again when the ring's width is known.
"""

from __future__ import annotations

from collections.abc import Mapping

from titans3.core.errors import ConfigError

# The class names AWS accepts in x-amz-storage-class and lifecycle transitions.
AWS_CLASSES = frozenset({
    "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING",
    "GLACIER", "DEEP_ARCHIVE", "OUTPOSTS", "GLACIER_IR", "SNOW", "EXPRESS_ONEZONE",
})
STANDARD = "STANDARD"


class StorageClassError(ConfigError):
    pass


def parse(spec: str) -> dict[str, tuple[int, int]]:
    """``"NAME=K+M,..."`` -> ``{NAME: (k, m)}``; raises :class:`StorageClassError`."""
    out: dict[str, tuple[int, int]] = {}
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        name, sep, km = item.partition("=")
        name = name.strip().upper()
        if not sep or name not in AWS_CLASSES:
            raise StorageClassError(f"expected CLASS=K+M with an S3 storage class name, got {item!r}")
        if name == STANDARD:
            raise StorageClassError("STANDARD is the bucket's own scheme (set it with ec)")
        if name in out:
            raise StorageClassError(f"{name} is mapped twice")
        try:
            k_s, m_s = km.strip().split("+")
            k, m = int(k_s), int(m_s)
        except ValueError:
            raise StorageClassError(f"{name}: expected K+M such as 2+2, got {km!r}") from None
        if k < 1 or m < 1:
            raise StorageClassError(f"{name}: {k}+{m} needs k >= 1 and m >= 1")
        out[name] = (k, m)
    return out


def check_fits(classes: Mapping[str, tuple[int, int]], width: int) -> None:
    """Every mapped scheme fits a placement of ``width`` drives."""
    for name, (k, m) in classes.items():
        if k + m > width:
            raise StorageClassError(
                f"{name}={k}+{m} needs {k + m} drives per object; the placement has {width}")


def for_placement(spec: str, width: int) -> dict[str, tuple[int, int]]:
    """The classes of ``spec``, each checked to fit ``width`` drives."""
    classes = parse(spec)
    try:
        check_fits(classes, width)
    except StorageClassError as e:
        raise StorageClassError(f"storage_classes: {e}") from None
    return classes
