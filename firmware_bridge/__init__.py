"""Signed firmware images, chunked resumable transfers, staged rollouts (docs/firmware.md).

`signing`: keys and signed manifests. `transfer`: one image to one device over any channel.
`serial_channel`: frames over a serial line. The image format and frames are in `drivers/firmware.py`.
"""
