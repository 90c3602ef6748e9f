"""Reminder channels: e-mail over SMTP and a JSON webhook (``rotator.intake.reminders``)."""
