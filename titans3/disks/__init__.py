"""Host drive management: which drives this host has, in which ring slots."""
