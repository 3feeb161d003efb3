"""Loopback stand-ins for cloud providers, one module per wire format."""
