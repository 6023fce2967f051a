"""`python -m tuning`: the command line."""

import sys

from tuning.cli import main

sys.exit(main())
