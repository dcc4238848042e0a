"""Tests for pks.transaction (RFC 3261 §17 state machines, RFC 6026), on a fake clock."""
