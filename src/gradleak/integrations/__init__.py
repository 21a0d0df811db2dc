"""Audits of real federated-learning software: Flower strategies and mods (`flower`)."""
