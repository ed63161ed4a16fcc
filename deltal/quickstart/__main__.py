"""``python -m deltal.quickstart``: see :mod:`deltal.quickstart`."""

import sys

from deltal.quickstart import main

sys.exit(main())
