"""The plugin API: the store protocols and capabilities a backend implements, the pluggy hook
specifications it registers with, and the registry that discovers and loads plugins."""
