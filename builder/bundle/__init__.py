"""An image turned into something a runtime can run: its rootfs and its config.json."""
