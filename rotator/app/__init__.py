"""The running daemon: the composition root (``bootstrap``), lifecycle, scheduler, discovery."""
