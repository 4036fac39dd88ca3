"""The county centre: receives points' reports, shows which are offline, publishes packages."""
