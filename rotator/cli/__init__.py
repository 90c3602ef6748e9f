"""The ``rotator`` command line: commands, the admin API client and the status table."""
