"""Beside the data path: the ``pks`` command."""
