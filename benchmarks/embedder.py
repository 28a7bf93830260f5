"""Embedder latency matrix (backend x precision x batch) for the paper and tiny configs; same as `hicmd bench`.

    .venv/bin/python benchmarks/embedder.py [--quick] [--config tiny] [--batch 1,8] [--backend onnxruntime] ...

Every option of `hicmd bench` is accepted; results go to --out (default bench-out/).
"""

import sys

from hicmd.cli import main

if __name__ == "__main__":
    sys.argv = ["hicmd", "bench", *sys.argv[1:]]
    main()
