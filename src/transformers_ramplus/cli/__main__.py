"""`python -m transformers_ramplus.cli` (what `accelerate launch -m` and `torchrun -m` start)."""

import sys

from .main import main


if __name__ == "__main__":
    sys.exit(main())
