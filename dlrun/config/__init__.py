"""The run's configuration: the typed schema, composition from `conf/` with Hydra, and
validation, each a module, so that reading one does not need the others.

    schema.py    the dataclasses: every key a user can set, typed, with its default
    compose.py   Hydra composition of `conf/`, override parsing, one-line error messages
    validate.py  every name against its registry and every number against its range
    load.py      the config a command runs with: composed (or read from a run folder), validated
"""
