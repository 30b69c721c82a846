"""python -m builder: the pydock command."""

import sys

from builder.cli import main

sys.exit(main())
