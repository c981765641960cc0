"""``python -m ue_bench.cli``: the ``ue-bench`` command."""

import sys

from ue_bench.cli import main

sys.exit(main())
