"""The command line: ``promptrecorder show | check | demo | ...`` (entry point ``cli.main:main``)."""
