"""Probes: small objects implementing :class:`lensprobe.engine.protocol.Probe`."""
