"""MQTT side of face-edge: topics, store-and-forward spool, publisher, and what they share
(the paho client factory, the password reader, the demo broker).

Import the submodules directly (``edge.publish.publisher`` etc.); this package imports nothing
heavy so that ``edge.publish.topics`` stays cheap.
"""
