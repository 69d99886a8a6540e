"""Run the `rome` command as `python -m rome`."""

import sys

from rome.cli import main

sys.exit(main())
