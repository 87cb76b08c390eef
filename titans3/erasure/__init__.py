"""Erasure coding and stripe arithmetic (pure placement layer: no I/O).

* :mod:`.stripe` -- where an object's bytes live in its fragment streams and which
  segments a byte range needs (pure arithmetic, no pyeclib).
* :mod:`.codec` -- :class:`ECScheme` and the pyeclib/ISA-L :class:`Codec` that turns
  one segment into ``k + m`` fragments and back.
"""

from .codec import EC_TYPE, Codec, DecodeError, ECScheme, get_codec
from .stripe import Layout, layout_for, resolve_range, segments_for_range

__all__ = [
    "EC_TYPE",
    "Codec",
    "DecodeError",
    "ECScheme",
    "Layout",
    "get_codec",
    "layout_for",
    "resolve_range",
    "segments_for_range",
]
