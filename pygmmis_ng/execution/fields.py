"""Which fields of a fit's problem (:class:`pygmmis_ng.fitting.problem.problem.Problem`) go where.

The executors that run tasks in other processes send the problem without its
large arrays once, and the per-sample rows their own way (shared memory, or
chunk by chunk to Dask workers).
"""

#: one row per (pattern-sorted) sample: what a chunk task reads of its rows
ROW_FIELDS = ("Xc", "S", "R", "weight", "log_bg_obs")
#: the neighborhood flags (with ``cutoff``): per-sample state the chunk tasks write
FLAG_FIELD = "nbr"
#: large arrays only the fitting process uses (never sent)
PARENT_ONLY_FIELDS = ("reseed_points", "order", "reseed_support")
