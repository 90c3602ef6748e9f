"""Adapters: the concrete Vault, Mistral, sink and metrics code behind ``rotator.ports``."""
