"""The process: the `face-edge` command line, the daemon and its systemd integration."""
