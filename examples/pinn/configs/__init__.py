"""Configurations of the PINN example: `default` and overrides of it."""
