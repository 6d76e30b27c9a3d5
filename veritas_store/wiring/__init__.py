"""Wiring: the config file (parsing, validation, defaults) and opening the stores it names."""
