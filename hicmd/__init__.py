"""hicmd: Hi-CMD visible-infrared person re-identification, from training to two-camera streaming.

Importing this package is cheap and never imports torch: the model lives in `hicmd.model`, the edge runtime in
`hicmd.runtime` (numpy + OpenCV + one inference backend), the exporters in `hicmd.export`.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
