"""`python -m signalvault` runs the command line."""

from signalvault.cli.main import main

main()
