"""IPMI BMC driver (pyghmi): power, boot device and mode, FRU inventory, BMC firmware."""
