"""Probes: small objects implementing :class:`lensprobe.engine.protocol.Probe` (or ``ModelProbe``).

Each module registers its probe with :func:`lensprobe.probes.registry.register_probe`; the
registry finds the modules of this package itself, so a new probe touches only its own module.
"""
