"""The Redis account store: shared balances for several controller nodes."""

from accounts.redis.store import RedisAccountStore

__all__ = ["RedisAccountStore"]
