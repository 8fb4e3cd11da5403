"""Cluster API Provider Metal3's API (infrastructure.cluster.x-k8s.io v1beta1 and v1beta2)."""
