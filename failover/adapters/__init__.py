"""Adapters: one module per external system. Only these touch Azure SDKs, Redis, HTTP or PostgreSQL."""
