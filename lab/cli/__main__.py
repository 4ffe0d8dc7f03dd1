"""``python -m optgen.lab.cli``: the same as the ``optgen`` command."""

import sys

from optgen.lab.cli import main

sys.exit(main())
