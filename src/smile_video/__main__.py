"""`python -m smile_video VERB ...` (what torchrun launches)."""

import sys

from .cli import main

sys.exit(main())
