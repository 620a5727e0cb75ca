"""MQTT side of face-edge: topics, store-and-forward spool, publisher, local broker, subscriber.

Import the submodules directly (``edge.mqtt.publisher`` etc.); this package imports nothing
heavy so that ``edge.mqtt.topics`` stays cheap.
"""
