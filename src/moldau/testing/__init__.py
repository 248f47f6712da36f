"""Public test kit: real broker processes on free ports, and a TCP fault proxy."""

from moldau.testing.broker import BrokerProcess, free_port, running_broker, wait_for_port

__all__ = ["BrokerProcess", "free_port", "running_broker", "wait_for_port"]
