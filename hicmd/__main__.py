"""`python -m hicmd ...` (also what `torchrun -m hicmd train ...` runs)."""

from hicmd.cli import main

if __name__ == "__main__":
    main()
