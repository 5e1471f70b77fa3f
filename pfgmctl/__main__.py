"""`python -m pfgmctl` (also what `torchrun -m pfgmctl` runs)."""

from pfgmctl.cli import main

if __name__ == "__main__":
    main()
