"""``python -m deltal.train``: see :mod:`deltal.train`."""

from deltal.train import main

main()
