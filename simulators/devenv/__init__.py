"""`metalcubed devenv`: a bare-metal lab on one machine (emulated BMCs, agents, controllers)."""
