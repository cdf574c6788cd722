"""Fixed colours, so one configuration looks the same in every figure of every report.

Allocator colours are keyed by label (the ``label`` of ``summary.json``, e.g. ``paged:block_size=16``). A label is
matched to the longest known family it starts with (``reserved:pow2`` before ``reserved``); a label that adds
options to its family (``paged:block_size=32``) gets a shade of the family colour chosen by a hash of the whole
label, so two variants differ but each variant keeps its colour across figures, runs and reports. Unknown families
get a colour from ``OTHER_COLOURS`` by the same hash. Never assign colours by position in a list: the same label
would change colour when another run is added.
"""

import colorsys
import zlib

# family -> base colour. Reds/oranges for reservation-based (Orca) baselines, blue for paged (vLLM), as a reader
# of the vLLM paper's Fig. 2/12 expects; purple for vAttention.
FAMILY_TO_COLOUR = {
    "paged": "#1f77b4",
    "reserved:max": "#d62728",
    "reserved:pow2": "#ff7f0e",
    "reserved:oracle": "#2ca02c",
    "reserved": "#8c564b",
    "vattention": "#9467bd",
    "contiguous-growth": "#e377c2",
    "static": "#7f7f7f",
}

# Labels that spell out a family's default options draw in the family colour itself.
DEFAULT_LABEL_TO_FAMILY = {"paged:block_size=16": "paged", "vattention:page_size=2MiB": "vattention"}

OTHER_COLOURS = ("#17becf", "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd")

# The five memory parts of DESIGN §3, bottom of the stack first, and their colours (vLLM Fig. 2 legend order).
MEMORY_PARTS = ("token_states", "reserved", "internal_frag", "external_frag", "free")
PART_TO_COLOUR = {
    "token_states": "#4c72b0",
    "reserved": "#dd8452",
    "internal_frag": "#c44e52",
    "external_frag": "#8172b3",
    "free": "#d9d9d9",
}
PART_TO_NAME = {
    "token_states": "Token states",
    "reserved": "Reserved",
    "internal_frag": "Internal fragmentation",
    "external_frag": "External fragmentation",
    "free": "Free",
}


def colour_for(label: str) -> str:
    """The colour of one configuration label, as ``#rrggbb``; stable across figures and reports."""
    label = DEFAULT_LABEL_TO_FAMILY.get(label, label)
    family = _family_of(label)
    label_hash = zlib.crc32(label.encode("utf-8"))
    if family is None:
        return OTHER_COLOURS[label_hash % len(OTHER_COLOURS)]
    base = FAMILY_TO_COLOUR[family]
    if label == family:
        return base
    # A variant of a known family: same hue, lightness moved by up to ±0.18 so it stays recognisable.
    shift = ((label_hash % 7) - 3) * 0.06 or 0.12
    return _shade(base, shift)


def _family_of(label: str) -> str | None:
    matches = [
        f for f in FAMILY_TO_COLOUR if label == f or label.startswith((f + ":", f + ",", f + "/", f + " "))
    ]
    return max(matches, key=len) if matches else None


def _shade(colour: str, lightness_shift: float) -> str:
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    h, lightness, s = colorsys.rgb_to_hls(r, g, b)
    lightness = min(0.85, max(0.15, lightness + lightness_shift))
    r, g, b = colorsys.hls_to_rgb(h, lightness, s)
    return "#{:02x}{:02x}{:02x}".format(*(round(c * 255) for c in (r, g, b)))
