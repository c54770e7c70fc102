"""Protocol adapters behind one small typed interface, and the device profiles they read.

The lowest layer of Lamplighter: nothing here imports the other packages.
"""
