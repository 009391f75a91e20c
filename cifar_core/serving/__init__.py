"""The serving wing: a stored model loaded and run (``inference``) and exported to ONNX
(``exports``), as the dashboard and ``predict`` use it.

May import the root, models, data and artifacts; nothing above it.
"""
