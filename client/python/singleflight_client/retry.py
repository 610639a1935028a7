"""Retries on UNAVAILABLE, carried out by gRPC from the channel's config."""

import dataclasses
import json

_SERVICE = "singleflight.v1.SingleFlight"
# Forget is left out: a late second Forget could forget a flight that started
# after the first one.
_RETRIED = [
    {"service": _SERVICE, "method": "Do"},
    {"service": _SERVICE, "method": "DoStream"},
    {"service": _SERVICE, "method": "InFlight"},
    {"service": "grpc.health.v1.Health", "method": "Check"},
]


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Retries of calls that fail with UNAVAILABLE; the C++ client's defaults.

    Do, DoStream (until its first reply) and InFlight are retried, Forget
    never. The n-th retry waits a random time between 0 and
    min(initial_backoff * multiplier ** (n - 1), max_backoff) seconds. Every
    attempt counts against the call's one deadline.
    """

    # Attempts in all, the first included: 1 turns retries off. gRPC caps
    # this at 5.
    max_attempts: int = 4
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    multiplier: float = 2.0

    def service_config(self) -> str:
        """The channel's service config (JSON) that applies this policy."""
        if self.max_attempts <= 1:
            return "{}"
        policy = {
            "maxAttempts": self.max_attempts,
            "initialBackoff": f"{self.initial_backoff:.3f}s",
            "maxBackoff": f"{self.max_backoff:.3f}s",
            "backoffMultiplier": self.multiplier,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
        return json.dumps(
            {"methodConfig": [{"name": _RETRIED, "retryPolicy": policy}]})
