"""The ``lensprobe`` sub-commands, one module each (see :mod:`lensprobe.cli`)."""
