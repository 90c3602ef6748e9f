"""Vault (or OpenBao): the gateway every call goes through, auth, the secret/state codec."""
