"""Hypothesis strategies shared by the property tests."""

import os

from hypothesis import strategies as st


def examples(n):
    """Example count n scaled by $PYPOOL_TEST_SCALE: 20 for a long bug hunt; CI's
    re-runs of the suite on the wheel and the serial build use 0.5."""
    return max(1, int(n * float(os.environ.get("PYPOOL_TEST_SCALE", "1"))))


PAD_FORMS = ("int", "per_axis", "pairs", "valid")
SAME_FORMS = ("same", "same_lower")


@st.composite
def paddings(draw, extents, allow_same=True):
    """Any padding form of SPEC §3 whose pads stay below each axis's effective extent."""
    form = draw(st.sampled_from(PAD_FORMS + (SAME_FORMS if allow_same else ())))
    if form == "int":
        return draw(st.integers(0, min(extents) - 1))
    if form == "per_axis":
        return tuple(draw(st.integers(0, e - 1)) for e in extents)
    if form == "pairs":
        return tuple((draw(st.integers(0, e - 1)), draw(st.integers(0, e - 1))) for e in extents)
    return form
