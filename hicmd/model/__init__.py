"""Hi-CMD networks, one module per part of the paper (torch lives here)."""

from hicmd.model.attribute import AttributeEncoder, AttributeLayout, load_imagenet_weights
from hicmd.model.decoder import Decoder
from hicmd.model.discriminator import MultiScaleDiscriminator
from hicmd.model.embedding import HFLHead, HFLOutput
from hicmd.model.hicmd import MODALITIES, Codes, HiCMD
from hicmd.model.prototype import PrototypeEncoder

__all__ = [
    "AttributeEncoder", "AttributeLayout", "Codes", "Decoder", "HFLHead", "HFLOutput", "HiCMD", "MODALITIES",
    "MultiScaleDiscriminator", "PrototypeEncoder", "load_imagenet_weights",
]
