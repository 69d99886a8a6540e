"""Run the `rome` command as `python -m rome`."""

import sys

from rome.ops.cli import main

sys.exit(main())
