"""Warm-up imported once by the forkserver, so every checker process (and every replacement of a killed one) starts
with math-verify, sympy and the LaTeX parser already loaded and exercised.

Library module of ``server/math``; named in ``set_forkserver_preload``. The check below runs in the forkserver's
main thread at import time on purpose: forked workers inherit its warm caches instead of paying ~1 s each.
"""

from equivalence import check_pair

check_pair("\\frac{1}{2}", "0.5", 5, 4000)
check_pair("(1,2]", "x=3", 5, 4000)
