"""The libvirt backend of `metalcubed devenv`: real TCG virtual machines behind sushy-tools
(Redfish, libvirt driver) and virtualbmc (IPMI), on an isolated libvirt network."""
