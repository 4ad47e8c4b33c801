"""The `signalvault` command: the root group in main.py, one module per command group, and what
they share (options.py). Imports anything; nothing imports it.
"""
