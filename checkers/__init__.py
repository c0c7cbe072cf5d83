"""Everything that runs against a model, and the `certspec` command line."""
