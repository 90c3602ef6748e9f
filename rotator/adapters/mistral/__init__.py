"""Mistral AI: the key verifier."""
