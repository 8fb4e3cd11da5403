"""Redfish BMC driver (sushy): capabilities, client cache, payload parsers, vendor quirks."""
