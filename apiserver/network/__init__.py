"""The Neutron v2.0 subset modern ``openstack`` commands use: networks, subnets, ports,
security groups and their rules, floating IPs."""
