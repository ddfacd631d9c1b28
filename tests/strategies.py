"""Hypothesis strategies shared by the property tests."""

from hypothesis import strategies as st

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
