"""The model: values and pure policy (version choice, expiry bands, outcomes). No I/O."""
