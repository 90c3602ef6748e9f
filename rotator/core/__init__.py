"""The use cases over the ports: rotation, delivery, the rotation lease, the key service."""
