"""Triton Inference Server client backend (`--backend triton --url grpc://host:8001`): many camera pairs share one GPU
server that serves the repository `hicmd export --triton DIR` wrote. Needs tritonclient (`pip install
'hicmd[triton]'`). Torch-free.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import numpy as np

from ..manifest import Artifact
from ..redact import redact
from .base import BackendBase, BackendError

__all__ = ["TritonBackend", "model_name", "parse_triton_url"]


def model_name(artifact: Artifact) -> str:
    """The Triton model that serves an artifact: hicmd_rgb, hicmd_ir_fp16, hicmd_rgb_fp16_engine (shared with
    hicmd.export.triton, which writes the repository under these names)."""
    suffix = "_engine" if artifact.format == "engine" else ""
    return "hicmd_" + artifact.name.replace(".", "_") + suffix


def parse_triton_url(url: str) -> str:
    """grpc://host:8001 (or host:8001) -> "host:8001". Only gRPC: it carries uint8 tensors without JSON."""
    parts = urlsplit(url if "://" in url else f"grpc://{url}")
    if parts.scheme != "grpc" or not parts.hostname:
        raise BackendError(f"--url {redact(url)!r}: give the Triton server's gRPC address, e.g. grpc://10.0.0.2:8001")
    try:
        port = parts.port or 8001
    except ValueError:
        raise BackendError(f"--url {redact(url)!r}: the port is not a number") from None
    return f"{parts.hostname}:{port}"


class TritonBackend(BackendBase):
    """Sends each batch to a Triton model over gRPC; the server's dynamic batcher merges requests of many clients."""

    def __init__(self, url: str, model: str, timeout_s: float = 10.0) -> None:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        self._grpc, self._error = grpcclient, InferenceServerException
        self.address, self.model, self.timeout_s = parse_triton_url(url), model, timeout_s
        self.client = grpcclient.InferenceServerClient(self.address)
        try:
            if not self.client.is_model_ready(model, client_timeout=timeout_s):
                raise BackendError(f"Triton at {self.address} has no ready model {model!r}; load the repository "
                                   f"that 'hicmd export --triton' wrote")
            meta = self.client.get_model_metadata(model, as_json=True, client_timeout=timeout_s)
            # the largest batch one request may carry (config.pbtxt's max_batch_size; 0: the model does not batch)
            self.max_batch = int(self.client.get_model_config(model, client_timeout=timeout_s).config.max_batch_size)
        except InferenceServerException as exc:
            self.client.close()
            raise BackendError(f"Triton at {self.address}: {exc.message()}") from None
        self.input_shapes = {t["name"]: tuple(int(d) for d in t["shape"]) for t in meta["inputs"]}
        self.output_names = tuple(t["name"] for t in meta["outputs"])
        self._dtypes = {t["name"]: t["datatype"] for t in meta["inputs"]}
        self.description = f"triton grpc://{self.address} model {model}"

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One request per batch; a batch larger than the model's max_batch_size (a crowd in one camera) goes as
        several requests, since Triton refuses the whole batch rather than splitting it."""
        self._require(feeds, self.input_shapes)
        batch = len(next(iter(feeds.values())))
        if 0 < self.max_batch < batch:
            parts = [self._infer({n: feeds[n][i:i + self.max_batch] for n in self.input_shapes})
                     for i in range(0, batch, self.max_batch)]
            return {n: np.concatenate([p[n] for p in parts]) for n in self.output_names}
        return self._infer(feeds)

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        inputs = []
        for name in self.input_shapes:
            array = np.ascontiguousarray(feeds[name])
            tensor = self._grpc.InferInput(name, list(array.shape), self._dtypes[name])
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        outputs = [self._grpc.InferRequestedOutput(n) for n in self.output_names]
        try:
            result = self.client.infer(self.model, inputs, outputs=outputs, client_timeout=self.timeout_s)
        except self._error as exc:
            raise BackendError(f"Triton at {self.address}, model {self.model}: {exc.message()}") from None
        return {n: result.as_numpy(n) for n in self.output_names}

    def close(self) -> None:
        self.client.close()
