"""manifest.json: the only contract between hicmd.export (writer) and hicmd.runtime (reader).

An export folder holds ONNX graphs / TensorRT engines and one manifest.json describing them. The runtime reads
sizes, colour order and normalisation from here and never hard-codes them. Torch-free.

Layout (version 1):

    {
      "format": "hicmd-manifest", "version": 1, "hicmd_version": "0.1.0", "created": "2026-11-25T12:00:00Z",
      "config_name": "tiny", "config": {...full hicmd config...},
      "checkpoint": {"file": "last.pt", "sha256": "..."},
      "input":  {"name": "images", "layout": "NHWC", "dtype": "uint8", "color": "RGB",
                 "height": 128, "width": 64, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                 "resize": "pil-bicubic"},
      "embedding_dim": 512, "attribute_dim": 512, "prototype_shape": [64, 32, 16],
      "attribute_layout": {"chunks": 4, "style": [0, 64], "pose": [64, 96], "illumination": [96, 128]},
      "opset": 17, "mirror": true,
      "artifacts": [
        {"name": "rgb", "role": "embedder", "modality": "rgb", "precision": "fp32", "format": "onnx",
         "file": "rgb.onnx", "sha256": "...",
         "inputs":  [{"name": "images", "shape": [-1, 128, 64, 3], "dtype": "uint8"}],
         "outputs": [{"name": "embedding", "shape": [-1, 512], "dtype": "float32"}, ...]},
        {"name": "generator", "role": "generator", "modality": null, ...},
        {"name": "rgb.fp16", "format": "engine", "precision": "fp16", ...,
         "tensorrt": {"version": "10.3.0", "gpu": "Orin", "compute_capability": "8.7",
                      "profile": {"min": 1, "opt": 8, "max": 32}}}
      ],
      "parity": {"rgb": {"cosine_min": 0.99999, ...}, ...}
    }

`attribute_layout` gives offsets inside each of the `chunks` equal chunks of the attribute vector. `mirror`: the
runtime embeds each crop and its mirror image and sums the two (export measured the gates that way); absent = false.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hicmd.errors import HicmdError

from .atomic import write_atomically
from .resize import RESIZE

__all__ = [
    "MANIFEST_NAME",
    "ManifestError",
    "TensorSpec",
    "Artifact",
    "InputSpec",
    "Manifest",
    "sha256_file",
    "confined",
    "load_manifest",
]

MANIFEST_NAME = "manifest.json"
FORMAT = "hicmd-manifest"
VERSION = 1
ROLES = ("embedder", "generator", "detector")
FORMATS = ("onnx", "engine", "openvino")  # openvino: an IR (.xml), its weights (.bin) in `weights`
PRECISIONS = ("fp32", "fp16", "int8")


class ManifestError(HicmdError, ValueError):
    """A manifest that is missing, malformed, or names files that are not there."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]  # -1 for dynamic dimensions
    dtype: str  # numpy dtype name: uint8, float32, float16


@dataclass(frozen=True)
class Artifact:
    name: str  # unique key, e.g. "rgb", "ir.fp16", "generator.fp16"
    role: str  # embedder | generator | detector
    modality: str | None  # rgb | ir | None (generator)
    precision: str  # fp32 | fp16 | int8
    format: str  # onnx | engine | openvino
    file: str  # relative to the manifest's folder
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    tensorrt: dict[str, Any] | None = None  # engines only: version, gpu, compute_capability, profile
    weights: dict[str, str] | None = None  # OpenVINO IR only: {"file": "rgb.int8.nncf.bin", "sha256": ...}

    @property
    def files(self) -> tuple[str, ...]:
        """Every file the artifact is made of (an OpenVINO IR is two)."""
        return (self.file, *((self.weights["file"],) if self.weights else ()))


@dataclass(frozen=True)
class InputSpec:
    name: str
    layout: str  # NHWC
    dtype: str  # uint8
    color: str  # RGB
    height: int
    width: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: str = RESIZE  # how crops are resized (runtime/resize.py); "" in manifests written before it was recorded


@dataclass(frozen=True)
class Manifest:
    config_name: str
    config: dict[str, Any]
    checkpoint: dict[str, Any]
    input: InputSpec
    embedding_dim: int
    attribute_dim: int
    prototype_shape: tuple[int, int, int]
    attribute_layout: dict[str, Any]
    opset: int
    artifacts: tuple[Artifact, ...]
    parity: dict[str, Any] = field(default_factory=dict)
    gates: dict[str, Any] = field(default_factory=dict)  # measured distance gates: {"match": {"threshold": ...}}
    hicmd_version: str = ""
    created: str = ""
    macs_per_image: int = 0  # embedder multiply-adds per image (the bench's GFLOP/s without torch); 0 = unknown
    mirror: bool = False  # embed each crop with its mirror image too (runtime/embedder.py); False before it existed
    root: Path | None = None  # folder the manifest was read from (not serialised)

    # ------------------------------------------------------------------ queries

    def find(self, role: str, modality: str | None = None, precision: str | None = None,
             format: str | None = None) -> list[Artifact]:
        """Artifacts matching every given field (None = any)."""
        return [
            a for a in self.artifacts
            if a.role == role
            and (modality is None or a.modality == modality)
            and (precision is None or a.precision == precision)
            and (format is None or a.format == format)
        ]

    def pick(self, role: str, modality: str | None, precision: str, format: str) -> Artifact:
        """Exactly one artifact, or a ManifestError saying what the folder does hold."""
        found = self.find(role, modality, precision, format)
        if not found:
            have = ", ".join(f"{a.file} ({a.precision} {a.format})" for a in self.find(role, modality)) or "none"
            what = f"{role}{'/' + modality if modality else ''}"
            raise ManifestError(
                f"no {precision} {format} {what} in {self.root or 'the manifest'} (it has: {have}); "
                f"re-export with the flags that produce it (e.g. hicmd export --fp16 --engine, or --int8 --calib "
                f"regdb:DATA)"
            )
        return found[0]

    def path(self, artifact: Artifact | str) -> Path:
        """Where an artifact's file is: always inside the manifest's folder.

        A manifest is data from wherever the model folder came from: a file name that is absolute, climbs out
        with '..' or is a symlink leading outside the folder would let it open (or run) any file on the machine.
        """
        return confined(self.root or Path("."), artifact if isinstance(artifact, str) else artifact.file)

    def verified_path(self, artifact: Artifact) -> Path:
        """The artifact's path after checking that its bytes are the ones export hashed (a swapped graph runs
        nothing): one ManifestError naming the file on a missing hash or a mismatch. An OpenVINO IR's weights
        file is checked too (`weights_path` then gives it)."""
        if artifact.weights:
            self._verified(artifact.weights.get("file", ""), artifact.weights.get("sha256", ""))
        return self._verified(artifact.file, artifact.sha256)

    def weights_path(self, artifact: Artifact) -> Path | None:
        """Where an OpenVINO IR's weights file is (inside the folder), or None for single-file artifacts."""
        return self.path(artifact.weights["file"]) if artifact.weights else None

    def _verified(self, file: str, sha256: str) -> Path:
        path = self.path(file)
        if not path.is_file():
            raise ManifestError(f"{path} is named in manifest.json but missing; re-export the model")
        if not sha256:
            raise ManifestError(f"manifest.json records no sha256 for {file}, so it cannot be verified; "
                                "re-export the model with 'hicmd export'")
        if sha256_file(path) != sha256:
            raise ManifestError(f"{path} does not match the sha256 in manifest.json: the file was changed or "
                                "replaced after export; re-export the model (or restore the file)")
        return path

    # ------------------------------------------------------------------ (de)serialisation

    def _checked(self) -> "Manifest":
        """The manifest itself carries no hash: a hand edit that gives a value no export writes fails here, in one
        line, rather than as numpy's error in the middle of a stream."""
        spec = self.input
        _number(spec.height, 1, 4096, "input.height")
        _number(spec.width, 1, 4096, "input.width")
        _number(self.embedding_dim, 1, 1 << 16, "embedding_dim")
        for name, values, low in (("mean", spec.mean, 0.0), ("std", spec.std, 1e-6)):
            if len(values) != 3:
                raise ValueError(f"input.{name} has {len(values)} values, not one per colour channel")
            for value in values:
                _number(value, low, 255.0, f"input.{name}")
        if not isinstance(self.gates, dict):
            raise ValueError(f"gates is {self.gates!r}, not an object of measured gates")
        for name in ("match", "split", "gallery"):  # the stream's gates, each {"threshold": cosine distance, ...}
            if name in self.gates:
                gate = self.gates[name]
                if not isinstance(gate, dict):
                    raise ValueError(f"gates.{name} is {gate!r}, not a measured gate {{'threshold': ...}}")
                _number(gate.get("threshold"), 0.0, 2.0, f"gates.{name}.threshold")
        return self

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("root")
        return {"format": FORMAT, "version": VERSION, **data}

    def save(self, folder: str | Path) -> Path:
        """Write manifest.json atomically into `folder`."""
        return write_atomically(Path(folder) / MANIFEST_NAME, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any], root: Path | None = None) -> "Manifest":
        if data.get("format") != FORMAT:
            raise ManifestError(f"not a hicmd manifest (format={data.get('format')!r}); export with 'hicmd export'")
        if data.get("version") != VERSION:
            raise ManifestError(f"manifest version {data.get('version')} is not supported (this hicmd reads {VERSION})")
        try:
            artifacts = tuple(_artifact(a) for a in data["artifacts"])
            inp = data["input"]
            return cls(
                config_name=data["config_name"],
                config=data["config"],
                checkpoint=data.get("checkpoint", {}),
                input=InputSpec(
                    name=inp["name"], layout=inp["layout"], dtype=inp["dtype"], color=inp["color"],
                    height=int(inp["height"]), width=int(inp["width"]),
                    mean=tuple(inp["mean"]), std=tuple(inp["std"]), resize=inp.get("resize", ""),
                ),
                embedding_dim=int(data["embedding_dim"]),
                attribute_dim=int(data["attribute_dim"]),
                prototype_shape=tuple(data["prototype_shape"]),
                attribute_layout=data["attribute_layout"],
                opset=int(data["opset"]),
                artifacts=artifacts,
                parity=data.get("parity", {}),
                gates=data.get("gates", {}),
                hicmd_version=data.get("hicmd_version", ""),
                created=data.get("created", ""),
                macs_per_image=int(data.get("macs_per_image", 0)),
                mirror=_flag(data, "mirror"),
                root=root,
            )._checked()
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"manifest is malformed ({type(exc).__name__}: {exc}); re-export it") from None


def _number(value: Any, low: float, high: float, what: str) -> None:
    """ValueError unless `value` is a number in [low, high] (NaN is in no range; JSON's true is no number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{what} is {value!r}, not a number in {low:g}..{high:g}")


def _flag(data: dict[str, Any], key: str) -> bool:
    """A true/false field, false when absent (bool("false") would be true: a hand-edited manifest must not pass)."""
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"{key} is {value!r}, not true or false")
    return value


def _artifact(a: dict[str, Any]) -> Artifact:
    if a["role"] not in ROLES or a["format"] not in FORMATS or a["precision"] not in PRECISIONS:
        raise ValueError(f"artifact {a.get('name')!r} has role/format/precision "
                         f"{a['role']}/{a['format']}/{a['precision']}")
    weights = a.get("weights")
    if weights is not None and not (isinstance(weights, dict) and isinstance(weights.get("file"), str)):
        raise ValueError(f"artifact {a.get('name')!r} has weights {weights!r}, not {{'file': ..., 'sha256': ...}}")
    return Artifact(
        name=a["name"], role=a["role"], modality=a.get("modality"), precision=a["precision"],
        format=a["format"], file=a["file"], sha256=a.get("sha256", ""),
        inputs=tuple(TensorSpec(t["name"], tuple(t["shape"]), t["dtype"]) for t in a["inputs"]),
        outputs=tuple(TensorSpec(t["name"], tuple(t["shape"]), t["dtype"]) for t in a["outputs"]),
        tensorrt=a.get("tensorrt"), weights=a.get("weights"),
    )


def confined(root: Path, name: str) -> Path:
    """`root / name`, refused (ManifestError) unless it stays inside `root` once symlinks are resolved."""
    if not isinstance(name, str) or not name or Path(name).is_absolute() or "\x00" in name:
        raise ManifestError(f"manifest.json names the file {name!r}: artifacts must be relative paths inside the "
                            "model folder; re-export the model")
    base = Path(root).resolve()
    path = base / name
    if not path.resolve().is_relative_to(base):
        raise ManifestError(f"manifest.json names {name!r}, which leads outside the model folder {base}; "
                            "refusing it (re-export the model)")
    return path


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_manifest(folder: str | Path, check_files: bool = True) -> Manifest:
    """Read `folder/manifest.json` (or a manifest path). Missing files raise ManifestError, one line each."""
    folder = Path(folder)
    path = folder / MANIFEST_NAME if folder.is_dir() else folder
    if not path.is_file():
        raise ManifestError(f"{path} not found; point --model at a folder written by 'hicmd export'")
    hint = "point --model at the folder written by 'hicmd export' (a .pt checkpoint goes to 'hicmd export' first)"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ManifestError(f"{path} is not a manifest (binary, not UTF-8 JSON); {hint}") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path} is not valid JSON ({exc}); re-export the model") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path} holds a JSON {type(data).__name__}, not a hicmd manifest object; {hint}")
    manifest = Manifest.from_dict(data, root=path.parent)
    if check_files:
        for artifact in manifest.artifacts:
            for file in artifact.files:
                if not manifest.path(file).is_file():
                    raise ManifestError(f"{manifest.path(file)} is named in {path} but missing; re-export the model")
    return manifest
