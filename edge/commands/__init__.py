"""The `face-edge` subcommands other than the daemon (enhance, preview, doctor, restore, subscribe, bench)."""
