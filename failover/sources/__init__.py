"""Payload parsers, one module per source family: raw dict -> Signals (pure)."""
