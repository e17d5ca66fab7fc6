"""Hypothesis profiles: ``ci`` (default; fixed seed) and ``thorough`` (random seeds).

``max_examples`` is a ceiling, not a promise: hypothesis stops earlier when a strategy runs out of
distinct inputs or when a test sets its own ``max_examples``. ``ci`` runs at most 200 examples per
test, ``thorough`` at most 5000.

Pick one with ``HYPOTHESIS_PROFILE=thorough ./run test``.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=200,
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    max_examples=5000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
