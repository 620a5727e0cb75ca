"""face-edge: turns a camera into a face-capture appliance that publishes face events over MQTT."""

__version__ = "0.1.0"
