"""Isolation for everything Shipway executes, and hardened git on the host.

A leaf: imports nothing of ours.
"""
