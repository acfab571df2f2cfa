"""``python -m lrmon``: the ``lrmon`` command (see :mod:`lrmon.cli`)."""

import sys

from lrmon.cli import main

if __name__ == "__main__":
    sys.exit(main())
