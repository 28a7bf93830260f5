"""`hicmd bench`: how fast each backend and precision embeds on this machine, and what the stream and the training
step cost. Torch-free unless a torch row is asked for (the edge box measures an export folder without torch).

- timing.py    the timing policy (warm-up, runs or seconds) and latency statistics
- machine.py   the machine record (CPU, flags, GPU, versions, Jetson power mode)
- peaks.py     this machine's GEMM peaks per precision (fp32 sgemm, int8, bf16); the graphs in gemm_graphs/
- subjects.py  what is measured: an export folder (+ checkpoint), or a random-initialised preset
- embedder.py  the embedder matrix (backend x precision x variant x batch)
- gpu.py       the TensorRT stage split (preprocess, host->device, compute, device->host)
- stream.py    a clip through the stream pipeline as fast as possible
- train.py     iterations/s of the training step
- targets.py   the issues' speed targets, judged on one run
- rows.py      the dataclasses all of the above return; report.py writes them (rich tables, JSON, Markdown, plot)
- run.py       one whole run (`run_bench`), what the command calls
"""

from hicmd.bench.rows import BenchResult, EmbedderRow, StreamRow, Target, TrainRow
from hicmd.bench.run import BenchOptions, run_bench

__all__ = ["BenchOptions", "run_bench", "BenchResult", "EmbedderRow", "StreamRow", "TrainRow", "Target"]
