"""Training-step benchmark: iterations/s of one D + G update on a random in-memory batch, per config.
Same as `hicmd bench --no-embedder --train`.

    .venv/bin/python benchmarks/train.py [--quick] [--config tiny]
"""

import sys

from hicmd.cli import main

if __name__ == "__main__":
    sys.argv = ["hicmd", "bench", "--no-embedder", "--train", *sys.argv[1:]]
    main()
