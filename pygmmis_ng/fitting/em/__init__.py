"""One full-batch EM run: the E-step over the executor (:mod:`.estep`), the M-step
(:mod:`.mstep`), the loop (:mod:`.em_loop`) with SQUAREM (:mod:`.acceleration`), the
stopping rule (:mod:`.convergence`), the Newton polish (:mod:`.coordinates`,
:mod:`.newton`), diagnostics (:mod:`.diagnostics`), neighborhoods (:mod:`.neighborhoods`),
split'n'merge (:mod:`.split_merge`), and full-batch EM as a start runner (:mod:`.runner`)."""
