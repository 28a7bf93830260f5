"""The stream's distance gates: given as options, or the ones export measured for this model, or defaults.

A cosine-distance gate is not a constant: every model has its own distance scale (a model for unseen people may put
the same person 0.7 apart across modalities where another puts them 0.3). Export measures the distributions on
held-out data and records the gates they imply in manifest.json (hicmd/export/gates.py); the stream uses them unless
told otherwise, and says where each came from. Torch-free.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_GATES", "resolve_gates", "describe_gates"]

DEFAULT_GATES = {"match": 0.5, "split": 0.5, "gallery": 0.5}


def resolve_gates(opts: Any, embedder: Any) -> dict[str, Any]:
    """{"match", "split", "gallery": cosine distances, "source": {gate: option | manifest | default}}."""
    manifest = getattr(embedder, "manifest", None)
    recorded = getattr(manifest, "gates", None) or {}
    given = {"match": opts.match_threshold, "split": opts.split_distance, "gallery": opts.match_threshold}
    gates: dict[str, Any] = {"source": {}}
    for name, value in given.items():
        if value is not None:
            gates[name], gates["source"][name] = float(value), "option"
        elif isinstance(recorded.get(name), dict) and "threshold" in recorded[name]:
            gates[name], gates["source"][name] = float(recorded[name]["threshold"]), "manifest"
        else:
            gates[name], gates["source"][name] = DEFAULT_GATES[name], "default"
    return gates


def describe_gates(gates: dict[str, Any]) -> str:
    return "gates: " + ", ".join(f"{name} {gates[name]:.3g} ({gates['source'][name]})"
                                 for name in ("match", "split", "gallery"))
