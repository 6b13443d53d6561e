"""``python -m ecorec.bench.placement`` (the worker ranks of measured exchanges start this way)."""

import sys

from ecorec.bench.placement.cli import main

sys.exit(main())
