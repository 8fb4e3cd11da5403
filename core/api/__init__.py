"""Metal3 API types: the Kubernetes kinds metalcubed reads and writes, and their validation.

`meta` holds the object plumbing shared by every kind; `baremetalhost` and `hardwaredata` the
metal3.io/v1alpha1 kinds; `validation` upstream's admission (webhook) rules and the registry of
kinds that `metalcubed validate` checks.
"""
