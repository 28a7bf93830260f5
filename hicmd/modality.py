"""The two modalities (cameras) of visible-infrared ReID, named once. Torch-free: the runtime uses it too."""

from typing import Literal

__all__ = ["Modality", "MODALITIES"]

Modality = Literal["rgb", "ir"]  # rgb: the visible camera; ir: the thermal / near-infrared one
MODALITIES: tuple[Modality, ...] = ("rgb", "ir")
