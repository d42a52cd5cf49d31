"""Runs certification suites on a hardware host.

A plain job spec goes in, a result document comes out. This package imports torch, numpy
and jsonschema only: never Django nor the platform (`certification`, `apps`), because a
runner host has neither database credentials nor the platform's code.
"""

SCHEMA_VERSION = "1.0"
