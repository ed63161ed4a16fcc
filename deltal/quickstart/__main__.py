"""``python -m deltal.quickstart``: see :mod:`deltal.quickstart`."""

from deltal.quickstart import main

main()
