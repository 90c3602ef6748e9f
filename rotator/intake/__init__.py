"""Key intake: one-time links to a page where a key's owner hands over the next key.

``links`` (tokens and what Vault keeps of them), ``service`` (create, open, submit),
``web`` (the page's own listener), ``i18n`` (its words in English, German, Italian),
``reminders`` (a fresh link to the owner at each expiry threshold).
"""
