"""Configuration: the registry (``registry.yaml``) and the typed parameters of a run.

Modules:
    registry: reads ``registry.yaml`` (experiments, profiles, papers' claims, backbones,
        per-model settings) and resolves an experiment + profile + overrides into parameters.
    params: the frozen, typed parameter classes (one per experiment) that ``resolve`` returns.
"""
