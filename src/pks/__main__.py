"""``python -m pks`` → the ``pks`` command."""

from pks.cli.main import main

main()
