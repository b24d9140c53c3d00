"""The checks behind scripts/check-deploy, one module per concern."""
