"""MQTT side of face-edge: topics, store-and-forward spool, publisher, local broker, subscriber.

Import the submodules directly (``edge.publish.publisher`` etc.); this package imports nothing
heavy so that ``edge.publish.topics`` stays cheap.
"""
