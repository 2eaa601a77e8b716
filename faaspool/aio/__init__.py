"""faaspool.aio: the same guarantees over redis.asyncio (being built)."""
