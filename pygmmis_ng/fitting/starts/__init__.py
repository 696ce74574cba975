"""The starts of a fit: the initializations (:mod:`.init`), the one driver that seeds, runs,
chooses and completes them for any kind of EM (:mod:`.driver`), and the end of a fit: the
convergence report, the GMM written, the result (:mod:`.finish`)."""
