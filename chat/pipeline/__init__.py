"""The answer pipeline, one module per stage: guard → cache → intent → retrieve → decide → prompt/extract.

Each stage has one typed entry point and is tested on its own; :mod:`chat.services`
composes them for one message.
"""
