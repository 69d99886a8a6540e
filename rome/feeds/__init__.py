"""What the feeds say: the canonical snapshot, the catalog, each provider's format,
the simulated night, the inject plan and replay.
"""
