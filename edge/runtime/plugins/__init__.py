"""One module per model runtime; each calls `register_runner(name, cls)` when imported.

A plugin imports its runtime library inside the runner, not at module level: the registry
imports every plugin, and a device may have only one runtime installed."""
