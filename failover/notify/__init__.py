"""Notification channels: one package per channel behind one `Channel` protocol.

Layer: application (the pipeline) and adapters (each channel's HTTP sending). `channel` holds the
protocol and the values crossing it, `http` the one JSON poster and the one answer classifier,
`pipeline` what runs in front of every channel (routing, maintenance muting and deferral, the
record), `registry` the one line per channel. Nothing here reads the environment at import.
"""
