"""What SREs run against the service's Kafka consumer groups: lag, its status, and its age."""
