"""The Azure Functions edge: one Blueprint per inbound channel; bindings in, core call, answer out.

Only this package imports `azure.functions`. Handlers hold no business logic.
"""
