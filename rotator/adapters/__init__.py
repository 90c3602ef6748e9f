"""Adapters: the concrete Vault, Mistral, sink, metrics and mail code behind ``rotator.ports``."""
