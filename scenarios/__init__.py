"""Scenario files for `metalcubed sim` (package data: *.yaml here, profiles/*.yaml).

No code lives here; simulators/fleet/scenario.py reads and validates these files. The module
exists so the files ship inside the `metalcubed.scenarios` package and load with
importlib.resources wherever metalcubed is installed.
"""
