"""`python -m streamproc.cli`."""

import sys

from streamproc.cli.parser import main

sys.exit(main())
