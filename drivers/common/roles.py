"""The two SLMs of the light path, by role (the bench file's table names)."""

from __future__ import annotations

__all__ = ["DECODING", "ENCODING", "SLM_ROLES"]

ENCODING = "encoding_slm"      # shows the encoder's phase seed, lit by the laser
DECODING = "decoding_slm"      # shows the trained decoder phase
SLM_ROLES = (ENCODING, DECODING)
