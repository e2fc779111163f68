"""Tasks: the model, the state machine, the hash-chained event log, the store port and its backends."""
