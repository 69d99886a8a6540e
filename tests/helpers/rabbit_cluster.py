"""The fault tests' three-node RabbitMQ cluster: `rome chaos` uses it too, so it lives in rome."""

from rome.ops.rabbit_nodes import RABBITMQ_BIN, Node, RabbitCluster, free_port

__all__ = ["RABBITMQ_BIN", "Node", "RabbitCluster", "free_port"]
