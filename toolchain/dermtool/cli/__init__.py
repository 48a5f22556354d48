"""The ``dermtool`` command line: thin click commands that call the Python API and print."""
