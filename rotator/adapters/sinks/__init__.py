"""Sinks deliver a key into the running integration; ``registry.build_sink`` maps YAML to one."""
