"""``python -m srlib ...`` (and ``torchrun ... -m srlib train ...``): the ``srlib`` command."""

import sys

from srlib.cli import main

sys.exit(main())
