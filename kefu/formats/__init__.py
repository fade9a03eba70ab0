"""Date formats of the interface languages that differ from Django's (FORMAT_MODULE_PATH): one module per language."""
