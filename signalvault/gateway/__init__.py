"""The /v1 data plane."""
