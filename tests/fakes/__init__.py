"""Stand-ins for what cannot run here: hosted providers' APIs, served on loopback."""
