"""Project scripts (packaging); never deployed."""
