"""A tiny calculator package; each module is imported by its own tests only."""
