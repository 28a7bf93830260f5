"""Stream benchmark: a SynthVI clip through the two-camera pipeline as fast as possible; processed FPS against the
embedder-bound FPS. Same as `hicmd bench --no-embedder --stream`.

    .venv/bin/python benchmarks/stream.py [--quick] [--config paper] [--videos DIR] [--model EXPORT_DIR]
"""

import sys

from hicmd.cli import main

if __name__ == "__main__":
    sys.argv = ["hicmd", "bench", "--no-embedder", "--stream", *sys.argv[1:]]
    main()
