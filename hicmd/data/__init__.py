"""Data layer: dataset records, readers for RegDB / SYSU-MM01 / LLCM layouts, image I/O and SynthVI.

Importing this package is light (no OpenCV, no torch); `hicmd.data.io` and `hicmd.data.synthvi` load OpenCV.
"""

from hicmd.data.datasets import (
    DATASET_KINDS,
    SPLITS,
    llcm_split,
    load_split,
    load_train,
    parse_dataset_spec,
    regdb_split,
    relabel,
    sysu_split,
)
from hicmd.data.records import MODALITIES, DataError, Record

__all__ = [
    "Record",
    "DataError",
    "MODALITIES",
    "DATASET_KINDS",
    "SPLITS",
    "parse_dataset_spec",
    "load_split",
    "load_train",
    "relabel",
    "regdb_split",
    "sysu_split",
    "llcm_split",
]
