"""The admin API family: topics, configs, cluster and storage, one module per concern.

``handlers.load_all()`` imports this module; importing the three below runs their
``@handles`` registrations:

- ``admin_topics``: CreateTopics, DeleteTopics, CreatePartitions
- ``admin_configs``: DescribeConfigs, AlterConfigs, IncrementalAlterConfigs
- ``admin_cluster``: DescribeCluster, DescribeLogDirs, DeleteRecords
"""

from __future__ import annotations

from moldau.broker.handlers import admin_cluster, admin_configs, admin_topics

__all__ = ["admin_cluster", "admin_configs", "admin_topics"]
