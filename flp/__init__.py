"""Composition root: settings, wiring of ports to adapters, and the `flp` CLI."""
