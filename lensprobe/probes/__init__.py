"""Probes: small objects implementing :class:`lensprobe.probe.Probe`."""
