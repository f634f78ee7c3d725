"""The ModelQueue demo site: emails to send and images to resize, run by workers.

Start it from the repository root with ``demo/run``; see docs/demo.rst.
"""
