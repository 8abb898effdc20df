"""Hardware I/O for the hall's devices: serial ID card readers, PC/SC card readers,
ESC/POS printers, document cameras, LED controllers, wireless keypads and the announcer.

Each driver is one module with an async interface and a byte-level simulator in
``drivers.simulators``, so the tests exercise the production parser and framer. The
edge agent (``drivers.agent``) bridges them to the device bus. Like ``devices``, this
package never imports ``hall``: a kiosk PC runs the agent without the server.
"""
