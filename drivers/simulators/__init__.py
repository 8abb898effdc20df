"""Devices that speak the real bytes on a pty or socket, for the tests and the demo.

A simulator holds the far end of the line a driver opens, so the driver under test is
the production code, framing and all.
"""
