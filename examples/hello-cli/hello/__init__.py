"""A tiny greeting program: the sample repository Shipway's docs and tests work on."""
