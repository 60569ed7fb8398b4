"""Built-in identifier suites (YAML); shipped in the wheel as ``lensprobe._builtin_probes``."""
