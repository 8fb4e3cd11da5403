"""Provisioners: the backends behind the Provisioner port (fixture now, the engine later)."""
