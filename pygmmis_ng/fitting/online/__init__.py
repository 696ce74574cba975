"""Online (stepwise) EM: the learning rate and minibatches (:mod:`.schedule`), the running
statistics and the passes (:mod:`.passes`), online EM as a start runner (:mod:`.runner`)."""
from .passes import OnlineRun, OnlineState  # noqa: F401  (their path before the sub-layers)
