"""Public test kit: real broker processes on free ports, and a TCP fault proxy."""

from moldau.testing.broker import BrokerProcess, free_port, running_broker, wait_for_port
from moldau.testing.fault_proxy import FaultProxy

__all__ = ["BrokerProcess", "FaultProxy", "free_port", "running_broker", "wait_for_port"]
