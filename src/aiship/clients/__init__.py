"""Clients of the systems the steps talk to: registries and ACR, docker, kubectl, Azure Resource
Manager, the model stores. No command line here; SDK errors become step errors in sdk_errors."""
