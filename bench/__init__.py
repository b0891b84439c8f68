"""Benchmarks against the floor: cold start, alert storm, lookups at scale, downtime accuracy.

Run them with `python -m bench.run [--only NAME] [--quick]` (or `make bench`); results are printed
and written to docs/benchmarks.md. Raw outputs (profiles, samples) go to bench/out/ (not committed).
"""
