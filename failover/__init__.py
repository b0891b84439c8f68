"""pg-failover-responder core: detects and responds to Azure PostgreSQL Flexible Server failovers.

Layer: package root of the pure core and its adapters. Importing it does no I/O and imports no SDK.
"""
