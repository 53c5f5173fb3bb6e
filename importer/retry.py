"""When to try a transient failure again, and how long to wait first: policy, not loops.

Exponential backoff with full jitter (a uniform draw between 0 and ``base * 2**(attempt-1)``,
capped at ``cap``) spreads the workers' retries apart instead of sending them back together;
caps on both the number of attempts and the time spent bound what one row can cost. ``wait=False``
removes the waits (tests) without changing the decisions. Retry only what is transient (5xx,
connection errors, timeouts); a gateway 429 is the rate budget's business, not this policy's.
"""

from __future__ import annotations

import math
import random

from importer.errors import InputError


class RetryPolicy:
    """Exponential backoff with full jitter, capped in attempts and in total time."""

    def __init__(
        self,
        max_attempts: int = 6,
        base: float = 1.0,
        cap: float = 60.0,
        max_elapsed: float = 900.0,
        rng: random.Random | None = None,
        wait: bool = True,
    ) -> None:
        if max_attempts < 1:
            raise InputError(f"retry attempts must be at least 1, not {max_attempts}")
        for name, value in (("base", base), ("cap", cap), ("max_elapsed", max_elapsed)):
            if not (math.isfinite(value) and value >= 0):
                raise InputError(f"retry {name} must be a number of seconds >= 0, not {value!r}")
        self.max_attempts = max_attempts
        self.base = base
        self.cap = cap
        self.max_elapsed = max_elapsed
        self.wait = wait
        self._rng = rng if rng is not None else random.Random()

    def delay(self, attempt: int) -> float:
        """Seconds to wait after ``attempt`` attempts failed (1 for the first); 0 if not waiting."""
        if not self.wait:
            return 0.0
        # The exponent is bounded so that a runaway attempt count cannot overflow a float.
        ceiling = min(self.cap, self.base * 2.0 ** min(max(attempt, 1) - 1, 64))
        return self._rng.uniform(0.0, ceiling)

    def should_retry(self, attempt: int, elapsed: float) -> bool:
        """Whether to try again after ``attempt`` attempts that took ``elapsed`` seconds."""
        return attempt < self.max_attempts and elapsed < self.max_elapsed
