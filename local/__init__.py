"""Local-only tooling (runner, drill, emulators, sinks): never deployed, never imported by the app."""
