"""``python -m common`` runs the ``camstudy`` command line."""

import sys

from common.cli import main

sys.exit(main())
