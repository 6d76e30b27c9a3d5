"""``python -m veritas_store.cli``: the same command line as the ``veritas-store`` script."""

from . import main

main()
