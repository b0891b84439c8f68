"""A small sample FunctionApp used only by tests/integration/test_runner.py."""
