"""``python -m edgebench_runtime`` == ``edgebench-runtime``."""

import sys

from .cli import main

sys.exit(main())
