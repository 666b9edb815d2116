"""Pipeline steps: small functions with typed inputs and results, each with a thin command line."""
