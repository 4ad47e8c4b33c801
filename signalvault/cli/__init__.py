"""The `signalvault` command."""
