"""`python -m signalvault` runs the command line."""

from signalvault.cli import main

main()
