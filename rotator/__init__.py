"""mistral-key-rotator: keeps the Mistral API keys of a production integration alive."""

__version__ = "0.1.0"
