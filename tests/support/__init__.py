"""Test harness: private redis-server processes, a TCP fault proxy, fixtures."""
