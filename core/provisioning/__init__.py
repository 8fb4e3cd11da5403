"""Provisioners: the backends behind the Provisioner port.

- `engine`: metalcubed's own provisioning engine over the BMC and Agent ports (with `nodes`,
  `context`, `ramdisk`, `deploy`, `configdrive`, `capacity`); docs/provisioning-engine.md.
- `fixture`: upstream's fixture provisioner, for tests and scale models without hardware.
"""
