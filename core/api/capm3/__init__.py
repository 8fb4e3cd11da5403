"""Cluster API Provider Metal3's API (infrastructure.cluster.x-k8s.io v1beta1 and v1beta2).

`v1beta2` (stored) and `v1beta1` (served) hold the models, `conversion` maps between them,
`kinds` registers both with `validation` (imported there).
"""
