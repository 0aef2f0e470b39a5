"""The metadata service: what instances read about themselves (EC2 and OpenStack trees)."""
