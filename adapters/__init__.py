"""Per-platform ``@with_redis`` decorators, shipped as ``faaspool.adapters.<platform>``."""
